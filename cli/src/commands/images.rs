//! `image-create` (upload with a progress bar), `image-list`,
//! `image-delete`.

use std::path::Path;

use futures_util::stream;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use nest_api_types::zun::{ImageView, UploadImageQuery};
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::args::OutputArgs;
use crate::client::Session;
use crate::error::CliError;
use crate::output::{Record, print_list, print_record};

const CHUNK: usize = 256 * 1024;
const COLUMNS: [&str; 5] = ["uuid", "name", "size", "repo_tags", "created_at"];

fn record(image: &ImageView) -> Record {
    vec![
        ("uuid", json!(image.uuid)),
        ("name", json!(image.name)),
        ("size", json!(image.size)),
        ("repo_tags", json!(image.repo_tags)),
        ("created_at", json!(image.created_at)),
        ("sha256", json!(image.sha256)),
    ]
}

/// `image-create`.
pub async fn create(
    session: &Session,
    file: &Path,
    name: Option<String>,
    output: &OutputArgs,
) -> Result<u8, CliError> {
    let (reader, length): (Box<dyn AsyncRead + Send + Unpin>, Option<u64>) =
        if file == Path::new("-") {
            (Box::new(tokio::io::stdin()), None)
        } else {
            let opened = tokio::fs::File::open(file)
                .await
                .map_err(|source| CliError::File {
                    what: "cannot read",
                    path: file.to_owned(),
                    source,
                })?;
            let length = opened.metadata().await.ok().map(|m| m.len());
            (Box::new(opened), length)
        };
    let bar = match length {
        Some(len) => ProgressBar::new(len).with_style(
            ProgressStyle::with_template(
                "uploading {bar:30} {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        ),
        None => ProgressBar::new_spinner().with_style(
            ProgressStyle::with_template("uploading {bytes} ({bytes_per_sec})")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        ),
    };
    // indicatif draws only on a terminal; scripts see nothing.
    bar.set_draw_target(ProgressDrawTarget::stderr());
    let shown = bar.clone();
    let path = file.to_owned();
    let chunks = stream::unfold(Some(reader), move |state| {
        let bar = shown.clone();
        let path = path.clone();
        async move {
            let mut reader = state?;
            let mut buf = vec![0u8; CHUNK];
            match reader.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    bar.inc(n as u64);
                    Some((Ok::<_, std::io::Error>(buf), Some(reader)))
                }
                Err(e) => Some((
                    Err(std::io::Error::new(
                        e.kind(),
                        format!("reading {}: {e}", path.display()),
                    )),
                    None,
                )),
            }
        }
    });
    let result = session
        .upload_image(
            &UploadImageQuery { name },
            reqwest::Body::wrap_stream(chunks),
            length,
        )
        .await;
    bar.finish_and_clear();
    let image = result?;
    match output.format {
        None if output.columns.is_empty() => println!("{}", image.uuid),
        _ => print_record(record(&image), output)?,
    }
    Ok(0)
}

/// `image-list`.
pub async fn list(session: &Session, output: &OutputArgs) -> Result<u8, CliError> {
    let images = session.list_images().await?;
    let rows = images
        .iter()
        .map(|i| {
            record(i)
                .into_iter()
                .filter(|(k, _)| COLUMNS.contains(k))
                .collect()
        })
        .collect();
    print_list(&COLUMNS, rows, output)?;
    Ok(0)
}

/// `image-delete`.
pub async fn delete(session: &Session, images: &[String]) -> Result<u8, CliError> {
    let mut code = 0;
    for image in images {
        if let Err(e) = session.delete_image(image).await {
            if images.len() == 1 {
                return Err(e);
            }
            eprintln!("osc: cannot delete image {image}: {e}");
            if code == 0 {
                code = e.exit_code();
            }
        }
    }
    Ok(code)
}
