//! Throughput of one upload through the S3 backend's sink: bytes written in 64 KiB
//! pieces (as the server writes decrypted packets), finished, then published.
//!
//! ```sh
//! eval "$(.ci/seaweedfs.sh start /tmp/sw)"
//! cargo run --release -p server-app --features fleet --example s3_throughput -- 256      # MiB
//! .ci/seaweedfs.sh stop /tmp/sw
//! ```
//!
//! Reads the bucket from `S3_BUCKET` and the rest from the AWS environment variables;
//! writes under `bench/<random>/` and deletes what it wrote.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failure is a panic

use std::time::Instant;

use server_app::storage::s3::{S3Contents, S3Options};
use server_app::storage::{new_upload_key, random_name, Contents};

fn main() -> anyhow::Result<()> {
    let mib: usize = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "256".into())
        .parse()?;
    let part_mib: usize = std::env::args()
        .nth(2)
        .unwrap_or_else(|| "8".into())
        .parse()?;
    let bucket = std::env::var("S3_BUCKET").map_err(|_| anyhow::anyhow!("set S3_BUCKET"))?;
    let options = S3Options {
        part_size: part_mib << 20,
        ..S3Options::default()
    };
    let url = format!("s3://{bucket}/bench/{}", random_name());
    let c = S3Contents::open_with(
        &url,
        object_store::aws::AmazonS3Builder::from_env(),
        options,
    )?;
    let total = mib << 20;
    let piece: Vec<u8> = (0..65_536u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    let key = new_upload_key();
    let start = Instant::now();
    let mut sink = c.create_upload(&key)?;
    let mut done = 0;
    while done < total {
        let n = piece.len().min(total - done);
        sink.write(&piece[..n])?;
        done += n;
    }
    sink.finish()?;
    let written = start.elapsed().as_secs_f64();
    let object = format!("objects/{}/{}", "00".repeat(16), random_name());
    let t = Instant::now();
    c.publish(&key, &object)?;
    let published = t.elapsed().as_secs_f64();
    let mb = total as f64 / 1e6;
    println!(
        "{mib} MiB, parts of {part_mib} MiB: write+finish {written:.2} s ({:.0} MB/s), publish (complete+copy+delete) {published:.2} s, end to end {:.0} MB/s",
        mb / written,
        mb / (written + published)
    );
    c.delete_object(&object)?;
    Ok(())
}
