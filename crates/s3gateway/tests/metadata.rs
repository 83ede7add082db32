//! Object metadata through a real client (boto3): what PutObject,
//! CopyObject and CreateMultipartUpload are given comes back on GetObject
//! and HeadObject; it follows the object's content at its key, across
//! commits that do not touch it, and is gone with other content or the repo.
//! A multipart object's part sizes are kept with it: GetObject and
//! HeadObject read one part by `partNumber`.

mod common;

const WRITE: &str = r#"
import datetime
B = "master.meta"

def show(key):
    h = s3.head_object(Bucket=B, Key=key)
    std = [h.get(n) for n in ["ContentType", "CacheControl", "ContentDisposition",
                              "ContentLanguage", "ContentEncoding", "ExpiresString"]]
    return " ".join([key] + [str(v) for v in std] + [str(sorted(h["Metadata"].items()))])

s3.create_bucket(Bucket=B)
s3.put_object(Bucket=B, Key="m", Body=b"data", ContentType="text/csv", CacheControl="max-age=60",
              ContentDisposition="attachment", ContentLanguage="en", ContentEncoding="gzip",
              Expires=datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
              Metadata={"owner": "ana", "empty": ""})
print(show("m"))
g = s3.get_object(Bucket=B, Key="m")
print("get", g["ContentType"], sorted(g["Metadata"].items()))
print("override", s3.get_object(Bucket=B, Key="m", ResponseContentType="text/plain")["ContentType"])
s3.put_object(Bucket=B, Key="plain", Body=b"x")
print(show("plain"))
s3.copy_object(Bucket=B, Key="copied", CopySource=B + "/m")
print(show("copied"))
s3.copy_object(Bucket=B, Key="replaced", CopySource=B + "/m", MetadataDirective="REPLACE",
               Metadata={"x": "y"})
print(show("replaced"))
s3.put_object(Bucket=B, Key="again", Body=b"same", Metadata={"a": "b"})
s3.put_object(Bucket=B, Key="again", Body=b"same")
print(show("again"))
up = s3.create_multipart_upload(Bucket=B, Key="mp", ContentType="image/png", Metadata={"k": "v"})["UploadId"]
part = s3.upload_part(Bucket=B, Key="mp", UploadId=up, PartNumber=1, Body=b"png")["ETag"]
s3.complete_multipart_upload(Bucket=B, Key="mp", UploadId=up,
                             MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part}]})
print(show("mp"))
# Parts of a multipart object, by partNumber; an object written whole is one part.
up = s3.create_multipart_upload(Bucket=B, Key="parts")["UploadId"]
sizes = [5 * 1024 * 1024, 10]
tags = [s3.upload_part(Bucket=B, Key="parts", UploadId=up, PartNumber=i + 1, Body=bytes([65 + i]) * n)["ETag"]
        for i, n in enumerate(sizes)]
s3.complete_multipart_upload(Bucket=B, Key="parts", UploadId=up, MultipartUpload={
    "Parts": [{"PartNumber": i + 1, "ETag": t} for i, t in enumerate(tags)]})
p2 = s3.get_object(Bucket=B, Key="parts", PartNumber=2)
print("part2", p2["PartsCount"], p2["ContentLength"], p2["ContentRange"], p2["Body"].read().decode())
p1 = s3.head_object(Bucket=B, Key="parts", PartNumber=1)
print("part1", p1["PartsCount"], p1["ContentLength"])
print("part3", code(lambda: s3.get_object(Bucket=B, Key="parts", PartNumber=3)))
print("part-and-range", code(lambda: s3.get_object(Bucket=B, Key="parts", PartNumber=1, Range="bytes=0-1")))
w = s3.get_object(Bucket=B, Key="plain", PartNumber=1)
print("whole", w.get("PartsCount"), w["Body"].read().decode())
s3.copy_object(Bucket=B, Key="parts-copy", CopySource=B + "/parts")
print("copy", s3.head_object(Bucket=B, Key="parts-copy", PartNumber=1).get("PartsCount"))
print("too-large", code(lambda: s3.put_object(Bucket=B, Key="big", Body=b"x", Metadata={"big": "x" * 2100})))
print("too-large-upload", code(lambda: s3.create_multipart_upload(Bucket=B, Key="big", Metadata={"big": "x" * 2100})))
"#;

const READ: &str = r#"
for key in ["m", "copied"]:
    h = s3.head_object(Bucket="master.meta", Key=key)
    print(key, h["ContentType"], sorted(h["Metadata"].items()))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_object_metadata_follows_the_content_at_its_key() {
    let served = common::serve().await;
    let out = served.python(WRITE).await;
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "m text/csv max-age=60 attachment en gzip Wed, 02 Jan 2030 03:04:05 GMT [('empty', ''), ('owner', 'ana')]",
            "get text/csv [('empty', ''), ('owner', 'ana')]",
            "override text/plain",
            "plain application/octet-stream None None None None None []",
            "copied text/csv max-age=60 attachment en gzip Wed, 02 Jan 2030 03:04:05 GMT [('empty', ''), ('owner', 'ana')]",
            "replaced application/octet-stream None None None None None [('x', 'y')]",
            "again application/octet-stream None None None None None []",
            "mp image/png None None None None None [('k', 'v')]",
            "part2 2 10 bytes 5242880-5242889/5242890 BBBBBBBBBB",
            "part1 2 5242880",
            "part3 InvalidPart",
            "part-and-range InvalidRequest",
            "whole None x",
            "copy None",
            "too-large MetadataTooLarge",
            "too-large-upload MetadataTooLarge",
        ],
        "{out}"
    );
    let pfs = &served.pfs;
    let put = |path: &'static str, data: &'static [u8]| async move {
        let mut put = pfs.put_files("meta", "master").await.unwrap();
        put.start_file(path, Some(0)).await.unwrap();
        put.write(data).await.unwrap();
        put.finish().await.unwrap();
    };
    // A commit that does not touch the objects keeps their metadata.
    put("/other", b"other").await;
    assert_eq!(
        served.python(READ).await,
        "m text/csv [('empty', ''), ('owner', 'ana')]\ncopied text/csv [('empty', ''), ('owner', 'ana')]\n"
    );
    // Other content at a key, written by any client, has none.
    put("/m", b"new content").await;
    assert_eq!(
        served.python(READ).await,
        "m application/octet-stream []\ncopied text/csv [('empty', ''), ('owner', 'ana')]\n"
    );
    // The metadata goes with the repo.
    let (_, index) = pfs.branch_head("meta", "master").await.unwrap().unwrap();
    let copied = index.get("/copied").await.unwrap().unwrap();
    assert!(
        pfs.file_attrs("meta", "/copied", &copied.hash)
            .await
            .unwrap()
            .is_some()
    );
    pfs.delete_repo("meta", false).await.unwrap();
    assert_eq!(
        pfs.file_attrs("meta", "/copied", &copied.hash)
            .await
            .unwrap(),
        None
    );
    served.stop().await;
}
