//! Conditional writes and deletes through a real client: boto3 (installed
//! by `scripts/test-tools.sh`) against a gateway over a real metadata store.
//! Conditions are checked as the write lands, so of many writers racing
//! with `If-None-Match: *` on one key exactly one succeeds, and the others
//! write nothing: no commit, not even an empty one. So do writes that
//! expect another bucket owner (`x-amz-expected-bucket-owner`).

mod common;

const SCRIPT: &str = r#"
import threading
B = "master.cond"

s3.create_bucket(Bucket=B)
etag = s3.put_object(Bucket=B, Key="k", Body=b"one", IfNoneMatch="*")["ETag"]
# The owner a client expects: the one listings name passes, another is
# refused, and the refused write or copy lands nothing.
owner = s3.list_buckets()["Owner"]["ID"]
print("expected-owner", code(lambda: s3.list_objects_v2(Bucket=B, ExpectedBucketOwner=owner)))
print("expected-owner-other", code(lambda: s3.put_object(Bucket=B, Key="o", Body=b"x",
                                                          ExpectedBucketOwner="111122223333")))
print("expected-source-owner-other", code(lambda: s3.copy_object(
    Bucket=B, Key="o", CopySource=B + "/k", ExpectedSourceBucketOwner="111122223333")))
print("put-if-none-match-again", code(lambda: s3.put_object(Bucket=B, Key="k", Body=b"two", IfNoneMatch="*")))
print("put-if-none-match-etag", code(lambda: s3.put_object(Bucket=B, Key="k", Body=b"two", IfNoneMatch=etag)))
print("put-if-match-other", code(lambda: s3.put_object(Bucket=B, Key="k", Body=b"two", IfMatch='"other"')))
print("put-if-match-missing", code(lambda: s3.put_object(Bucket=B, Key="nokey", Body=b"two", IfMatch="*")))
print("body-kept", s3.get_object(Bucket=B, Key="k")["Body"].read().decode())
print("put-if-match", code(lambda: s3.put_object(Bucket=B, Key="k", Body=b"two", IfMatch=etag)))
print("copy-if-none-match", code(lambda: s3.copy_object(Bucket=B, Key="k", CopySource=B + "/k",
                                                          MetadataDirective="REPLACE", IfNoneMatch="*")))

# Sixteen writers race to create one key: one wins.
outcomes = []
def racer(i):
    outcomes.append(code(lambda: s3.put_object(Bucket=B, Key="race", Body=b"racer %d" % i, IfNoneMatch="*")))
threads = [threading.Thread(target=racer, args=(i,)) for i in range(16)]
for t in threads: t.start()
for t in threads: t.join()
print("race", sorted(set(outcomes)), outcomes.count("ok"))

# A multipart completion on a condition; a refused one leaves the upload.
up = s3.create_multipart_upload(Bucket=B, Key="k")["UploadId"]
part = s3.upload_part(Bucket=B, Key="k", UploadId=up, PartNumber=1, Body=b"parts")["ETag"]
parts = {"Parts": [{"PartNumber": 1, "ETag": part}]}
print("complete-if-none-match", code(lambda: s3.complete_multipart_upload(
    Bucket=B, Key="k", UploadId=up, MultipartUpload=parts, IfNoneMatch="*")))
print("uploads-left", len(s3.list_multipart_uploads(Bucket=B).get("Uploads", [])))
current = s3.head_object(Bucket=B, Key="k")["ETag"]
print("complete-if-match", code(lambda: s3.complete_multipart_upload(
    Bucket=B, Key="k", UploadId=up, MultipartUpload=parts, IfMatch=current)))
print("completed", s3.get_object(Bucket=B, Key="k")["Body"].read().decode())
# Completing again answers as the completion did, and writes nothing.
again = s3.complete_multipart_upload(Bucket=B, Key="k", UploadId=up, MultipartUpload=parts)
print("complete-again", again["ETag"] == s3.head_object(Bucket=B, Key="k")["ETag"])
print("abort-completed", code(lambda: s3.abort_multipart_upload(Bucket=B, Key="k", UploadId=up)))
print("complete-elsewhere", code(lambda: s3.complete_multipart_upload(
    Bucket=B, Key="other", UploadId=up, MultipartUpload=parts)))

# Conditional deletes.
print("delete-if-match-other", code(lambda: s3.delete_object(Bucket=B, Key="k", IfMatch='"other"')))
print("delete-if-match-size-other", code(lambda: s3.delete_object(Bucket=B, Key="k", IfMatchSize=99)))
print("delete-if-match-size", code(lambda: s3.delete_object(Bucket=B, Key="k", IfMatchSize=5)))
print("delete-missing-if-match", code(lambda: s3.delete_object(Bucket=B, Key="k", IfMatch='"other"')))
r = s3.delete_objects(Bucket=B, Delete={"Objects": [{"Key": "race", "ETag": '"other"'}]})
print("delete-objects-other", [e["Code"] for e in r.get("Errors", [])])
tag = s3.head_object(Bucket=B, Key="race")["ETag"]
r = s3.delete_objects(Bucket=B, Delete={"Objects": [{"Key": "race", "ETag": tag, "Size": 7}]})
print("delete-objects", [d["Key"] for d in r.get("Deleted", [])], r.get("Errors", []))
print("left", [o["Key"] for o in s3.list_objects_v2(Bucket=B).get("Contents", [])])
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_conditional_writes_hold_as_they_land() {
    let served = common::serve().await;
    let stdout = served.python(SCRIPT).await;
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            "expected-owner ok",
            "expected-owner-other AccessDenied",
            "expected-source-owner-other AccessDenied",
            "put-if-none-match-again PreconditionFailed",
            "put-if-none-match-etag PreconditionFailed",
            "put-if-match-other PreconditionFailed",
            "put-if-match-missing NoSuchKey",
            "body-kept one",
            "put-if-match ok",
            "copy-if-none-match PreconditionFailed",
            "race ['PreconditionFailed', 'ok'] 1",
            "complete-if-none-match PreconditionFailed",
            "uploads-left 1",
            "complete-if-match ok",
            "completed parts",
            "complete-again True",
            "abort-completed NoSuchUpload",
            "complete-elsewhere NoSuchUpload",
            "delete-if-match-other PreconditionFailed",
            "delete-if-match-size-other PreconditionFailed",
            "delete-if-match-size ok",
            "delete-missing-if-match ok",
            "delete-objects-other ['PreconditionFailed']",
            "delete-objects ['race'] []",
            "left []",
        ],
        "{stdout}"
    );
    // Every successful write is one commit, and no refused one left any:
    // two puts, one racer, the completion and two deletes.
    let commits = served
        .pfs
        .list_commit("cond", None, Some("master"), 0, false)
        .await
        .unwrap();
    assert_eq!(commits.len(), 6, "{commits:?}");
    served.stop().await;
}
