//! What an authenticated caller may do: Zun's default policy
//! (zun-api.md §5), with Keystone's `reader` role on top.
//!
//! The rules, checked in this order:
//! 1. an object of another project is not found (404), unless the caller is
//!    admin: answering 403 would confirm that the object exists, and Nova
//!    and Zun answer 404 too;
//! 2. admin-only actions (`*_all_projects`, hosts, force delete, …) are
//!    forbidden (403) to everyone else;
//! 3. a caller who holds only `reader` may read but not write (403);
//! 4. anything else is allowed to the owner (any role on the project).
//!
//! This module decides; it does not fetch. The API layer looks the object up
//! first and passes its project as `owner`, and maps [`PolicyError::kind`] to
//! a status in its one error renderer. Callers must not invent their own
//! role checks.

use std::fmt;

use nest_core::ErrorKind;

use super::Caller;
use crate::domain::ProjectId;

/// Something a caller asks to do. Names follow Zun's policy rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Create a container in the caller's project (`container:create`).
    ContainerCreate,
    /// Create with fields only admins may set: `runtime`,
    /// `image_pull_policy` (`container:create:runtime`, …).
    ContainerCreateAdminFields,
    /// Create on a named instance, the `host` hint
    /// (`container:create:requested_destination`, admin only in Zun).
    ContainerCreateRequestedDestination,
    /// List the caller's project's containers (`container:get_all`).
    ContainerList,
    /// List every project's containers (`container:get_all_all_projects`).
    ContainerListAllProjects,
    /// Show one container (`container:get_one`).
    ContainerGet,
    /// Change name, cpu or memory (`container:update`).
    ContainerUpdate,
    /// Delete a container (`container:delete`).
    ContainerDelete,
    /// Delete a container whatever its status (`container:delete_force`).
    ContainerDeleteForce,
    /// Start, stop, restart, pause, unpause, kill, rename, rebuild, commit
    /// or resize (`container:start`, `container:stop`, …).
    ContainerAction,
    /// Run a command inside a container (`container:execute`).
    ContainerExec,
    /// Attach to a container's console (`container:attach`).
    ContainerAttach,
    /// Read a container's logs (`container:logs`).
    ContainerLogs,
    /// Read a container's processes or resource usage (`container:top`,
    /// `container:stats`).
    ContainerStats,
    /// Copy files out of a container (`container:get_archive`).
    ContainerArchiveGet,
    /// Copy files into a container (`container:put_archive`).
    ContainerArchivePut,
    /// List or show the actions taken on a container
    /// (`container:actions`).
    ContainerActionList,
    /// List compute hosts (`host:get_all`).
    HostList,
    /// Show one compute host (`host:get`).
    HostGet,
    /// List images known to the service (`image:get_all`).
    ImageList,
    /// Pull an image ahead of use (`image:pull`).
    ImagePull,
    /// Delete a stored image (`image:delete`).
    ImageDelete,
    /// Search a registry for images (`image:search`).
    ImageSearch,
    /// Show a project's quota and usage (`quota:get`).
    QuotaGet,
    /// Change a project's quota (`quota:update`).
    QuotaUpdate,
    /// Reset a project's quota to the defaults (`quota:delete`).
    QuotaDelete,
    /// List the service's own processes (`zun-service:get_all`).
    ServiceList,
    /// List availability zones (`availability_zones:get`).
    AvailabilityZoneList,
    /// Create a user-defined network in the caller's project
    /// (`nest:network:create`, the Docker endpoint's `network create`).
    NetworkCreate,
    /// List or show the project's networks (`nest:network:get`).
    NetworkGet,
    /// Remove a network (`nest:network:delete`).
    NetworkDelete,
}

impl Action {
    /// Every action, for exhaustive tests and documentation.
    pub const ALL: [Self; 31] = [
        Self::ContainerCreate,
        Self::ContainerCreateAdminFields,
        Self::ContainerCreateRequestedDestination,
        Self::ContainerList,
        Self::ContainerListAllProjects,
        Self::ContainerGet,
        Self::ContainerUpdate,
        Self::ContainerDelete,
        Self::ContainerDeleteForce,
        Self::ContainerAction,
        Self::ContainerExec,
        Self::ContainerAttach,
        Self::ContainerLogs,
        Self::ContainerStats,
        Self::ContainerArchiveGet,
        Self::ContainerArchivePut,
        Self::ContainerActionList,
        Self::HostList,
        Self::HostGet,
        Self::ImageList,
        Self::ImagePull,
        Self::ImageDelete,
        Self::ImageSearch,
        Self::QuotaGet,
        Self::QuotaUpdate,
        Self::QuotaDelete,
        Self::ServiceList,
        Self::AvailabilityZoneList,
        Self::NetworkCreate,
        Self::NetworkGet,
        Self::NetworkDelete,
    ];

    /// Zun's name for the rule, as its 403 message spells it.
    pub fn policy_name(self) -> &'static str {
        match self {
            Self::ContainerCreate => "container:create",
            Self::ContainerCreateAdminFields => "container:create:runtime",
            Self::ContainerCreateRequestedDestination => "container:create:requested_destination",
            Self::ContainerList => "container:get_all",
            Self::ContainerListAllProjects => "container:get_all_all_projects",
            Self::ContainerGet => "container:get_one",
            Self::ContainerUpdate => "container:update",
            Self::ContainerDelete => "container:delete",
            Self::ContainerDeleteForce => "container:delete_force",
            Self::ContainerAction => "container:action",
            Self::ContainerExec => "container:execute",
            Self::ContainerAttach => "container:attach",
            Self::ContainerLogs => "container:logs",
            Self::ContainerStats => "container:stats",
            Self::ContainerArchiveGet => "container:get_archive",
            Self::ContainerArchivePut => "container:put_archive",
            Self::ContainerActionList => "container:actions",
            Self::HostList => "host:get_all",
            Self::HostGet => "host:get",
            Self::ImageList => "image:get_all",
            Self::ImagePull => "image:pull",
            Self::ImageDelete => "image:delete",
            Self::ImageSearch => "image:search",
            Self::QuotaGet => "quota:get",
            Self::QuotaUpdate => "quota:update",
            Self::QuotaDelete => "quota:delete",
            Self::ServiceList => "zun-service:get_all",
            Self::AvailabilityZoneList => "availability_zones:get",
            Self::NetworkCreate => "nest:network:create",
            Self::NetworkGet => "nest:network:get",
            Self::NetworkDelete => "nest:network:delete",
        }
    }

    /// Whether the action only reads, so that the `reader` role may do it.
    ///
    /// Exec and attach count as writes: they run code in the container.
    pub fn is_read(self) -> bool {
        matches!(
            self,
            Self::ContainerList
                | Self::ContainerListAllProjects
                | Self::ContainerGet
                | Self::ContainerLogs
                | Self::ContainerStats
                | Self::ContainerArchiveGet
                | Self::ContainerActionList
                | Self::HostList
                | Self::HostGet
                | Self::ImageList
                | Self::ImageSearch
                | Self::QuotaGet
                | Self::ServiceList
                | Self::AvailabilityZoneList
                | Self::NetworkGet
        )
    }

    /// Whether only admins may do it, whatever the project.
    pub fn is_admin_only(self) -> bool {
        matches!(
            self,
            Self::ContainerCreateAdminFields
                | Self::ContainerCreateRequestedDestination
                | Self::ContainerListAllProjects
                | Self::ContainerDeleteForce
                | Self::HostList
                | Self::HostGet
                | Self::ImageList
                | Self::ImagePull
                | Self::ImageDelete
                | Self::QuotaUpdate
                | Self::QuotaDelete
                | Self::ServiceList
        )
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.policy_name())
    }
}

/// Why a caller may not do something.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The caller is known but not allowed; answered 403. The message is
    /// Zun's.
    #[error("Policy doesn't allow {action} to be performed.")]
    Forbidden {
        /// What was refused.
        action: Action,
    },
    /// The object belongs to another project; answered 404 exactly as if it
    /// did not exist. The API layer renders its own "not found" message with
    /// the id it looked up.
    #[error("not found")]
    NotFound,
}

impl PolicyError {
    /// The classification of this error.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Forbidden { .. } => ErrorKind::Forbidden,
            Self::NotFound => ErrorKind::NotFound,
        }
    }
}

/// Decides whether `caller` may do `action`.
///
/// `owner` is the project of the object acted on (a container, its logs,
/// …), or `None` for actions on a collection or on the caller's own project
/// (create, list, quota get).
///
/// # Errors
/// [`PolicyError::NotFound`] for another project's object (unless admin),
/// [`PolicyError::Forbidden`] for an admin-only action or a write by a
/// reader.
pub fn authorize(
    caller: &Caller,
    action: Action,
    owner: Option<&ProjectId>,
) -> Result<(), PolicyError> {
    if caller.is_admin() {
        return Ok(());
    }
    if owner.is_some_and(|owner| *owner != caller.project_id) {
        return Err(PolicyError::NotFound);
    }
    if action.is_admin_only() || (caller.is_read_only() && !action.is_read()) {
        return Err(PolicyError::Forbidden { action });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::domain::UserId;

    fn caller(project: &str, roles: &[&str]) -> Caller {
        Caller {
            user_id: UserId::parse("u1").expect("valid id"),
            project_id: ProjectId::parse(project).expect("valid id"),
            roles: roles
                .iter()
                .map(|r| (*r).to_owned())
                .collect::<BTreeSet<_>>(),
        }
    }

    fn project(id: &str) -> ProjectId {
        ProjectId::parse(id).expect("valid id")
    }

    #[test]
    fn member_may_do_every_non_admin_action_in_own_project() {
        let member = caller("p1", &["member", "reader"]);
        for action in Action::ALL {
            let expected = if action.is_admin_only() {
                Err(PolicyError::Forbidden { action })
            } else {
                Ok(())
            };
            assert_eq!(authorize(&member, action, None), expected, "{action}");
            assert_eq!(
                authorize(&member, action, Some(&project("p1"))),
                expected,
                "{action} on own object"
            );
        }
    }

    #[test]
    fn another_projects_object_is_not_found_for_every_role_but_admin() {
        for roles in [&["member"][..], &["reader"], &["member", "reader"], &[]] {
            let c = caller("p1", roles);
            for action in Action::ALL {
                assert_eq!(
                    authorize(&c, action, Some(&project("p2"))),
                    Err(PolicyError::NotFound),
                    "{action} by {roles:?}"
                );
            }
        }
    }

    #[test]
    fn admin_may_do_everything_in_every_project() {
        let admin = caller("admin-project", &["admin"]);
        for action in Action::ALL {
            assert_eq!(authorize(&admin, action, None), Ok(()), "{action}");
            assert_eq!(
                authorize(&admin, action, Some(&project("p2"))),
                Ok(()),
                "{action} on another project's object"
            );
        }
    }

    #[test]
    fn all_projects_listing_is_admin_only() {
        let err = authorize(
            &caller("p1", &["member"]),
            Action::ContainerListAllProjects,
            None,
        )
        .expect_err("member");
        assert_eq!(err.kind(), ErrorKind::Forbidden);
        assert_eq!(
            err.to_string(),
            "Policy doesn't allow container:get_all_all_projects to be performed."
        );
        assert!(
            authorize(
                &caller("p1", &["admin"]),
                Action::ContainerListAllProjects,
                None
            )
            .is_ok()
        );
    }

    #[test]
    fn reader_may_read_but_not_write() {
        let reader = caller("p1", &["reader"]);
        for action in Action::ALL {
            let expected = if action.is_admin_only() || !action.is_read() {
                Err(PolicyError::Forbidden { action })
            } else {
                Ok(())
            };
            assert_eq!(
                authorize(&reader, action, Some(&project("p1"))),
                expected,
                "{action}"
            );
        }
        for write in [
            Action::ContainerCreate,
            Action::ContainerUpdate,
            Action::ContainerDelete,
            Action::ContainerAction,
            Action::ContainerExec,
            Action::ContainerAttach,
            Action::ContainerArchivePut,
        ] {
            assert_eq!(
                authorize(&reader, write, None).map_err(|e| e.kind()),
                Err(ErrorKind::Forbidden),
                "{write}"
            );
        }
        for read in [
            Action::ContainerList,
            Action::ContainerGet,
            Action::ContainerLogs,
        ] {
            assert_eq!(authorize(&reader, read, None), Ok(()), "{read}");
        }
    }

    #[test]
    fn a_role_that_writes_lifts_the_reader_restriction() {
        // Keystone's implied roles give every member `reader` too.
        let member = caller("p1", &["reader", "member"]);
        assert_eq!(authorize(&member, Action::ContainerDelete, None), Ok(()));
        let admin_reader = caller("p1", &["reader", "admin"]);
        assert_eq!(
            authorize(&admin_reader, Action::ContainerDelete, Some(&project("p9"))),
            Ok(())
        );
    }

    #[test]
    fn policy_error_kinds_map_to_403_and_404() {
        assert_eq!(
            PolicyError::Forbidden {
                action: Action::HostList
            }
            .kind(),
            ErrorKind::Forbidden
        );
        assert_eq!(PolicyError::NotFound.kind(), ErrorKind::NotFound);
    }

    #[test]
    fn policy_names_are_unique() {
        let names: BTreeSet<&str> = Action::ALL.iter().map(|a| a.policy_name()).collect();
        assert_eq!(names.len(), Action::ALL.len());
    }
}
