//! A part sent again while its first upload was still running: a client
//! that lists both answers for the same part number completes with the
//! last one, and the object holds that content; an answer no longer
//! stored is still refused, also when it is the last entry.

mod common;

const SCRIPT: &str = r#"
B = "master.resent"

s3.create_bucket(Bucket=B)
up = s3.create_multipart_upload(Bucket=B, Key="k")["UploadId"]
first = s3.upload_part(Bucket=B, Key="k", UploadId=up, PartNumber=1, Body=b"A" * 8)["ETag"]
second = s3.upload_part(Bucket=B, Key="k", UploadId=up, PartNumber=1, Body=b"B" * 8)["ETag"]
print("stale", code(lambda: s3.complete_multipart_upload(Bucket=B, Key="k", UploadId=up,
      MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": first}]})))
print("last-counts", code(lambda: s3.complete_multipart_upload(Bucket=B, Key="k", UploadId=up,
      MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": second}, {"PartNumber": 1, "ETag": first}]})))
s3.complete_multipart_upload(Bucket=B, Key="k", UploadId=up, MultipartUpload={"Parts": [
    {"PartNumber": 1, "ETag": first}, {"PartNumber": 1, "ETag": second}]})
print("content", s3.get_object(Bucket=B, Key="k")["Body"].read().decode())
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_part_listed_twice_in_a_row_counts_by_its_last_entry() {
    let served = common::serve().await;
    let out = served.python(SCRIPT).await;
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "stale InvalidPart",
            "last-counts InvalidPart",
            "content BBBBBBBB"
        ],
        "{out}"
    );
    let (_, index) = served
        .pfs
        .branch_head("resent", "master")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(index.get("/k").await.unwrap().unwrap().size, 8);
    served.stop().await;
}
