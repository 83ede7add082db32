//! Signature verification with a real client: boto3 (installed by
//! `scripts/test-tools.sh`) signs with Signature V4 (headers, presigned
//! URLs, signed and unsigned payloads, aws-chunked uploads) and V2 against
//! a gateway whose authorizer knows one key's secret and lets that key read
//! and write one repo only.

use std::sync::Arc;

use pach_s3gateway::{Access, Authorizer, Caller, S3Error};

mod common;

const KEY: &str = "AKIDPACHYDERMTEST";
const SECRET: &str = "the-secret/with+signs";

/// Knows one key; that key may use repo `open` and nothing else; anonymous
/// callers may do nothing.
struct OneKey;

#[async_trait::async_trait]
impl Authorizer for OneKey {
    async fn verifies_signatures(&self) -> Result<bool, S3Error> {
        Ok(true)
    }

    async fn secret_key(&self, access_key: &str) -> Result<Option<String>, S3Error> {
        Ok((access_key == KEY).then(|| SECRET.to_string()))
    }

    async fn allow(&self, caller: &Caller, access: Access<'_>) -> Result<(), S3Error> {
        let repo = match access {
            Access::Read(r) | Access::Write(r) | Access::CreateRepo(r) | Access::DeleteRepo(r) => r,
        };
        if caller.verified && caller.access_key.as_deref() == Some(KEY) && repo == "open" {
            return Ok(());
        }
        Err(S3Error::AccessDenied(format!("no access to repo '{repo}'")))
    }
}

const SCRIPT: &str = r#"
import sys, urllib.request, urllib.error
from email.utils import formatdate

endpoint = os.environ["S3_ENDPOINT"]

def client(secret, **config):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="AKIDPACHYDERMTEST", aws_secret_access_key=secret,
                        config=Config(**config))

good = client("the-secret/with+signs")
bad = client("not-the-secret")

good.create_bucket(Bucket="master.open")
# A signed payload (plain HTTP: botocore hashes the body), keys that need encoding.
for key in ["a.txt", "dir/with space+plus", "ü/€"]:
    good.put_object(Bucket="master.open", Key=key, Body=b"hello " + key.encode())
    assert good.get_object(Bucket="master.open", Key=key)["Body"].read() == b"hello " + key.encode()
# Query parameters are signed too.
keys = [o["Key"] for o in good.list_objects_v2(Bucket="master.open", Prefix="dir/", MaxKeys=5)["Contents"]]
assert keys == ["dir/with space+plus"], keys
# Multipart with a document body.
up = good.create_multipart_upload(Bucket="master.open", Key="mp")["UploadId"]
etag = good.upload_part(Bucket="master.open", Key="mp", UploadId=up, PartNumber=1, Body=b"x" * 100)["ETag"]
good.complete_multipart_upload(Bucket="master.open", Key="mp", UploadId=up,
                               MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
assert good.get_object(Bucket="master.open", Key="mp")["Body"].read() == b"x" * 100

# The wrong secret is refused, for reads and writes; nothing is written.
print("wrong-secret-get", code(lambda: bad.get_object(Bucket="master.open", Key="a.txt")))
print("wrong-secret-put", code(lambda: bad.put_object(Bucket="master.open", Key="b", Body=b"x")))
print("unknown-key", code(lambda: boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
      aws_access_key_id="NOBODY", aws_secret_access_key="x").list_buckets()))
# A known key is refused a repo it has no access to.
print("other-repo", code(lambda: good.create_bucket(Bucket="master.closed")))
# A bucket that exists and is not the key's to write is taken.
print("taken", code(lambda: good.create_bucket(Bucket="master.taken")))
print("listed", [b["Name"] for b in good.list_buckets()["Buckets"] if b["Name"] != "master.taken"])
# With auth active a repo's access is its Pachyderm ACL, not an S3 one.
print("acl", code(lambda: good.get_bucket_acl(Bucket="master.open")))

# Signature V4 dated by a Date header alone, as Python's formatdate writes
# it (`-0000`): botocore then signs with that header, without x-amz-date.
dated = client("the-secret/with+signs")
dated.meta.events.register("before-call.s3.PutObject",
                           lambda **kw: kw["params"]["headers"].update({"Date": formatdate()}))
dated.put_object(Bucket="master.open", Key="dated", Body=b"by date")
print("date-header", good.get_object(Bucket="master.open", Key="dated")["Body"].read().decode())

# Presigned URLs: valid, tampered with, and for the wrong secret.
url = good.generate_presigned_url("get_object", Params={"Bucket": "master.open", "Key": "a.txt"}, ExpiresIn=600)
print("presigned", urllib.request.urlopen(url).read().decode())
def fetch(u):
    try:
        urllib.request.urlopen(u)
        return "ok"
    except urllib.error.HTTPError as e:
        return str(e.code)
print("presigned-tampered", fetch(url.replace("a.txt", "mp")))
print("presigned-wrong-secret", fetch(bad.generate_presigned_url("get_object", Params={"Bucket": "master.open", "Key": "a.txt"})))

# Signature V2, header and presigned.
v2 = client("the-secret/with+signs", signature_version="s3")
v2.put_object(Bucket="master.open", Key="v2", Body=b"two")
print("v2", v2.get_object(Bucket="master.open", Key="v2")["Body"].read().decode())
# botocore signs a request to a bucket itself as `/BUCKET/` but sends `/BUCKET`.
v2.create_bucket(Bucket="master.open")
print("v2-bucket", len(v2.list_objects(Bucket="master.open")["Contents"]))
print("v2-wrong-secret", code(lambda: client("nope", signature_version="s3").get_object(Bucket="master.open", Key="v2")))
v2url = v2.generate_presigned_url("get_object", Params={"Bucket": "master.open", "Key": "v2"})
print("v2-presigned", urllib.request.urlopen(v2url).read().decode())
print("v2-presigned-tampered", fetch(v2url.replace("Key", "Kez").replace("/v2?", "/a.txt?")))
"#;

/// A streaming upload whose body is signed chunk by chunk
/// (STREAMING-AWS4-HMAC-SHA256-PAYLOAD), sent with botocore's signer and
/// raw HTTP so that one chunk can be corrupted in flight.
const CHUNKED: &str = r#"
import os, hashlib, hmac, datetime, http.client, urllib.parse
endpoint = urllib.parse.urlparse(os.environ["S3_ENDPOINT"])
secret = "the-secret/with+signs"
region, service = "us-east-1", "s3"
def put(path, chunks, corrupt=False):
    now = datetime.datetime.now(datetime.timezone.utc)
    amz, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
    scope = f"{day}/{region}/{service}/aws4_request"
    def h(k, m): return hmac.new(k, m.encode(), hashlib.sha256).digest()
    key = h(h(h(h(("AWS4" + secret).encode(), day), region), service), "aws4_request")
    decoded = sum(len(c) for c in chunks)
    headers = {"host": endpoint.netloc, "x-amz-date": amz, "content-encoding": "aws-chunked",
               "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
               "x-amz-decoded-content-length": str(decoded)}
    signed = sorted(headers)
    canonical = "\n".join(["PUT", path, "", "".join(f"{k}:{headers[k]}\n" for k in signed),
                           ";".join(signed), "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"])
    sts = "\n".join(["AWS4-HMAC-SHA256", amz, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    seed = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (f"AWS4-HMAC-SHA256 Credential=AKIDPACHYDERMTEST/{scope},"
                                f"SignedHeaders={';'.join(signed)},Signature={seed}")
    body, prev = b"", seed
    for data in chunks + [b""]:
        sts = "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz, scope, prev,
                         hashlib.sha256(b"").hexdigest(), hashlib.sha256(data).hexdigest()])
        prev = hmac.new(key, sts.encode(), hashlib.sha256).hexdigest()
        sent = data[:-1] + b"!" if corrupt and data else data
        body += f"{len(data):x};chunk-signature={prev}\r\n".encode() + sent + b"\r\n"
    conn = http.client.HTTPConnection(endpoint.netloc)
    conn.request("PUT", path, body=body, headers=headers)
    r = conn.getresponse()
    text = r.read().decode()
    return r.status, ("SignatureDoesNotMatch" if "SignatureDoesNotMatch" in text else "")
print("chunked", put("/master.open/chunked", [b"a" * 65536, b"b" * 1000]))
print("chunked-corrupt", put("/master.open/corrupt", [b"a" * 65536, b"b" * 1000], corrupt=True))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_signatures_are_verified_against_the_authorizers_secret() {
    let served = common::serve_with(Arc::new(OneKey)).await;
    served.pfs.create_repo("taken", "", false).await.unwrap();
    served
        .pfs
        .create_branch("taken", "master", None, None)
        .await
        .unwrap();
    let out = served.python(SCRIPT).await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines,
        [
            "wrong-secret-get SignatureDoesNotMatch",
            "wrong-secret-put SignatureDoesNotMatch",
            "unknown-key InvalidAccessKeyId",
            "other-repo AccessDenied",
            "taken BucketAlreadyExists",
            "listed ['master.open']",
            "acl NotImplemented",
            "date-header by date",
            "presigned hello a.txt",
            "presigned-tampered 403",
            "presigned-wrong-secret 403",
            "v2 two",
            "v2-bucket 6",
            "v2-wrong-secret SignatureDoesNotMatch",
            "v2-presigned two",
            "v2-presigned-tampered 403",
        ],
        "{out}"
    );
    let out = served.python(CHUNKED).await;
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "chunked (200, '')",
            "chunked-corrupt (403, 'SignatureDoesNotMatch')"
        ],
        "{out}"
    );
    // What was refused wrote nothing: the corrupted upload and the wrong
    // secret's put are not files; the chunked upload is, whole.
    let pfs = &served.pfs;
    let (_, index) = pfs.branch_head("open", "master").await.unwrap().unwrap();
    assert!(index.get("/b").await.unwrap().is_none());
    assert!(index.get("/corrupt").await.unwrap().is_none());
    assert_eq!(index.get("/chunked").await.unwrap().unwrap().size, 66536);
    assert!(pfs.inspect_repo("closed").await.is_err());
    served.stop().await;
}
