//! `tern import FILE.csv`: creates an import over the API, uploads the file to the target it hands out
//! (streamed, with a progress bar of bytes), starts it, and follows it with a progress bar until it ends;
//! then prints the summary and the first row errors. It speaks only HTTP, so it works against `tern up` and
//! a deployed stack alike.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use futures::TryStreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::{Client, Method, Response, header};
use serde::Deserialize;
use serde_json::json;
use tokio_util::io::ReaderStream;

use crate::cli::ImportArgs;

/// How often the import's progress is asked for.
const POLL_EVERY: Duration = Duration::from_millis(500);
/// Row errors printed after the summary; the API holds the rest.
const ERRORS_PRINTED: usize = 10;
/// How long to wait for Tern to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImportJson {
    id: String,
    status: String,
    counts: CountsJson,
    failure: Option<String>,
    upload: Option<UploadJson>,
    #[serde(default)]
    errors: Vec<RowErrorJson>,
    errors_cursor: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CountsJson {
    rows_read: u64,
    imported: u64,
    unchanged: u64,
    failed: u64,
    bytes_read: u64,
    file_size: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct UploadJson {
    method: String,
    url: String,
    #[serde(default)]
    headers: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Deserialize)]
struct RowErrorJson {
    row: u64,
    column: Option<String>,
    reason: String,
}

/// The problem body of an error answer.
#[derive(Debug, Deserialize)]
struct ProblemJson {
    message: String,
}

pub async fn run(args: ImportArgs) -> anyhow::Result<()> {
    let key = args
        .key
        .filter(|key| !key.trim().is_empty())
        .ok_or_else(|| {
            anyhow!("an admin key is required: pass --key <ADMIN_KEY> or set TERN_ADMIN_KEY")
        })?;
    let size = tokio::fs::metadata(&args.file)
        .await
        .with_context(|| format!("cannot read {}", args.file.display()))?
        .len();
    let api = Api {
        client: Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .context("cannot set up the HTTP client")?,
        base: args.url.trim_end_matches('/').to_string(),
        key,
    };

    let created = api.create(&file_name(&args.file)).await?;
    let upload = created.upload.as_ref().ok_or_else(|| {
        anyhow!(
            "Tern created import {} without an upload target",
            created.id
        )
    })?;
    upload_file(&api.client, upload, &args.file, size).await?;
    api.start(&created.id).await?;
    let finished = follow(&api, &created.id, size).await?;
    print_summary(&finished);
    if finished.status == "failed" {
        bail!(
            "import {} failed: {}",
            finished.id,
            finished.failure.as_deref().unwrap_or("no reason given")
        );
    }
    Ok(())
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |name| name.to_string_lossy().into_owned(),
    )
}

/// Tern's import API over HTTP, with the admin key.
struct Api {
    client: Client,
    base: String,
    key: String,
}

impl Api {
    async fn create(&self, file_name: &str) -> anyhow::Result<ImportJson> {
        let response = self
            .client
            .post(format!("{}/v1/imports", self.base))
            .bearer_auth(&self.key)
            .json(&json!({ "fileName": file_name }))
            .send()
            .await
            .with_context(|| format!("cannot reach Tern at {}", self.base))?;
        read_json(response, "cannot create the import").await
    }

    async fn start(&self, id: &str) -> anyhow::Result<ImportJson> {
        let response = self
            .client
            .post(format!("{}/v1/imports/{id}/start", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .with_context(|| format!("cannot reach Tern at {}", self.base))?;
        read_json(response, "cannot start the import").await
    }

    async fn get(&self, id: &str) -> anyhow::Result<ImportJson> {
        let response = self
            .client
            .get(format!("{}/v1/imports/{id}", self.base))
            .bearer_auth(&self.key)
            .send()
            .await
            .with_context(|| format!("cannot reach Tern at {}", self.base))?;
        read_json(response, "cannot read the import").await
    }
}

/// The JSON of a successful answer, or an error carrying the status and the problem's message.
async fn read_json(response: Response, what: &str) -> anyhow::Result<ImportJson> {
    let status = response.status();
    let body = response
        .bytes()
        .await
        .with_context(|| format!("{what}: the answer was cut off"))?;
    if !status.is_success() {
        let message = serde_json::from_slice::<ProblemJson>(&body)
            .map(|problem| problem.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&body).trim().to_string());
        bail!("{what}: {status}: {message}");
    }
    serde_json::from_slice(&body).with_context(|| format!("{what}: the answer is not an import"))
}

/// PUTs the file to the upload target, streamed from disk, with a bar of bytes sent.
async fn upload_file(
    client: &Client,
    upload: &UploadJson,
    path: &Path,
    size: u64,
) -> anyhow::Result<()> {
    let method = Method::from_bytes(upload.method.as_bytes()).with_context(|| {
        format!(
            "the upload method {:?} is not an HTTP method",
            upload.method
        )
    })?;
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("cannot read {}", path.display()))?;
    let bar = bar(size, "uploading");
    let progress = bar.clone();
    let body = ReaderStream::new(file).inspect_ok(move |chunk| progress.inc(chunk.len() as u64));

    // S3 refuses chunked uploads: the length is always given.
    let mut request = client
        .request(method, &upload.url)
        .header(header::CONTENT_LENGTH, size)
        .body(reqwest::Body::wrap_stream(body));
    for (name, value) in &upload.headers {
        let Some(value) = value.as_str() else {
            bail!("the upload header {name} has no text value");
        };
        // The client sets these from the URL and the body.
        if !name.eq_ignore_ascii_case("host") && !name.eq_ignore_ascii_case("content-length") {
            request = request.header(name.as_str(), value);
        }
    }
    let response = request.send().await.context("the upload failed")?;
    bar.finish_and_clear();
    let status = response.status();
    if !status.is_success() {
        let body = response.text().await.unwrap_or_default();
        bail!("the upload failed: {status}: {}", body.trim());
    }
    Ok(())
}

/// Polls the import until it ends, with a bar of the file read so far and the rows counted.
async fn follow(api: &Api, id: &str, size: u64) -> anyhow::Result<ImportJson> {
    let bar = bar(size, "importing");
    loop {
        let import = api.get(id).await?;
        bar.set_position(import.counts.bytes_read);
        bar.set_message(rows_message(&import.counts));
        if matches!(import.status.as_str(), "completed" | "failed") {
            bar.finish_and_clear();
            return Ok(import);
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

fn bar(size: u64, prefix: &'static str) -> ProgressBar {
    let style = ProgressStyle::with_template("{prefix:>10} [{bar:30}] {bytes}/{total_bytes} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    ProgressBar::new(size).with_style(style).with_prefix(prefix)
}

fn rows_message(counts: &CountsJson) -> String {
    format!(
        "{} rows: {} imported, {} unchanged, {} failed",
        counts.rows_read, counts.imported, counts.unchanged, counts.failed
    )
}

fn print_summary(import: &ImportJson) {
    let counts = &import.counts;
    let size = counts.file_size.unwrap_or(counts.bytes_read);
    println!(
        "Import {} {}: {} ({} of {size} bytes read)",
        import.id,
        import.status,
        rows_message(counts),
        counts.bytes_read
    );
    if let Some(failure) = &import.failure {
        println!("  {failure}");
    }
    if import.errors.is_empty() {
        return;
    }
    println!("Row errors (row 1 is the header):");
    for error in import.errors.iter().take(ERRORS_PRINTED) {
        match &error.column {
            Some(column) => println!("  row {}, column {column}: {}", error.row, error.reason),
            None => println!("  row {}: {}", error.row, error.reason),
        }
    }
    let more = counts.failed.saturating_sub(ERRORS_PRINTED as u64);
    if more > 0 || import.errors_cursor.is_some() {
        println!(
            "  … and {more} more: GET /v1/imports/{}/errors lists them all",
            import.id
        );
    }
}
