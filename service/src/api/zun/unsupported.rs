//! Zun's routes that Nest deliberately does not serve (zun-api.md §2,
//! §2.5). A client reaching one gets a 400 in Zun's format saying what is
//! not supported and what to do instead, rather than a bare "not found":
//! the `zun` and `openstack appcontainer` commands print that sentence to
//! the user.

use axum::http::Method;

/// Why a Zun route is not served: the operation, and what to do instead.
pub type Refusal = (&'static str, &'static str);

/// The refusal for `method path` (a normalized path under `/v1`), when it
/// is one of Zun's routes Nest leaves out; `None` for any other path,
/// which stays a 404.
pub fn refusal(method: &Method, path: &str) -> Option<Refusal> {
    let rest = path.strip_prefix("/v1/")?;
    let segments: Vec<&str> = rest.split('/').collect();
    match segments.as_slice() {
        ["containers", _, action] => container_action(method, action),
        ["images", _, "search"] => Some((
            "image search",
            "name a registry image (`busybox`, `registry.example.com/app:1`) in a \
             container's image, or list the project's stored images \
             (`openstack appcontainer image list`)",
        )),
        ["services", _] => Some(super::services::CHANGE_REFUSED),
        ["availability_zones"] => Some((
            "availability zone listing",
            "Nest's instances are Nova servers: `openstack availability zone list --compute` \
             lists the zones, and the hint availability_zone picks one",
        )),
        ["quotas", _, "defaults"] | ["quota_classes", ..] => Some((
            "quota defaults and quota classes",
            "Nest keeps no quotas of its own; Nova's bound a project's containers \
             (`openstack quota show --default`)",
        )),
        ["registries", ..] => Some((
            "registries",
            "Nest keeps no registry credentials: run public registry images, or upload \
             an image to the project's store (POST /v1/nest/images)",
        )),
        ["capsules", ..] => Some((
            "capsules",
            "run several containers with `docker compose` through Nest's Docker endpoint \
             (docs/docker.md)",
        )),
        ["networks", ..] => Some((
            "Zun's network API (/v1/networks)",
            "containers use their instance's networks; name one with the hint network",
        )),
        _ => None,
    }
}

fn container_action(method: &Method, action: &str) -> Option<Refusal> {
    if method != Method::POST && method != Method::GET {
        return None;
    }
    Some(match action {
        "commit" => (
            "container commit",
            "Nest does not turn containers into images: build the image elsewhere and \
             upload it (POST /v1/nest/images)",
        ),
        "rebuild" => (
            "container rebuild",
            "delete the container and create it again with the new image",
        ),
        "get_archive" | "put_archive" => (
            "copying files to or from a container",
            "use exec, e.g. `openstack appcontainer exec <container> cat <file>`",
        ),
        "add_security_group" | "remove_security_group" => (
            "container security groups",
            "a container shares its instance's Nova security groups: change them on the \
             server (`openstack server add security group`)",
        ),
        "network_attach" | "network_detach" => (
            "attaching and detaching networks",
            "a container stays on its instance's networks; name one at create time with \
             the hint network",
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zun_routes_nest_leaves_out_are_refused_with_a_reason() {
        for (method, path) in [
            (Method::GET, "/v1/images/abc/search"),
            (Method::PUT, "/v1/services/disable"),
            (Method::PUT, "/v1/services/force_down"),
            (Method::GET, "/v1/availability_zones"),
            (Method::GET, "/v1/quotas/p/defaults"),
            (Method::GET, "/v1/quota_classes/default"),
            (Method::GET, "/v1/registries"),
            (Method::POST, "/v1/capsules"),
            (Method::POST, "/v1/networks"),
            (Method::POST, "/v1/containers/c/commit"),
            (Method::POST, "/v1/containers/c/rebuild"),
            (Method::GET, "/v1/containers/c/get_archive"),
            (Method::POST, "/v1/containers/c/put_archive"),
            (Method::POST, "/v1/containers/c/add_security_group"),
            (Method::POST, "/v1/containers/c/network_detach"),
        ] {
            let (what, reason) = refusal(&method, path).unwrap_or_else(|| panic!("{path}"));
            assert!(!what.is_empty() && !reason.is_empty(), "{path}");
        }
    }

    #[test]
    fn other_paths_stay_not_found() {
        for (method, path) in [
            (Method::GET, "/v1/nowhere"),
            (Method::GET, "/v1/containers/c/nowhere"),
            (Method::DELETE, "/v1/containers/c/commit"),
            (Method::GET, "/v2/images"),
            (Method::GET, "/v1/images"),
            (Method::GET, "/v1/quotas/p/other"),
        ] {
            assert!(refusal(&method, path).is_none(), "{path}");
        }
    }
}
