//! S3's additional checksums through a real client (boto3): a checksum
//! sent with a PUT (as a header, or as an aws-chunked trailer) is verified
//! and returned by reads that ask for it; a wrong one is refused and
//! writes nothing; a multipart upload started with an algorithm gets the
//! COMPOSITE or FULL_OBJECT checksum of its parts, which GetObject,
//! HeadObject and GetObjectAttributes return.

mod common;

const SCRIPT: &str = r#"
import base64, hashlib, http.client, urllib.parse, zlib
B = "master.sums"

def b64(b):
    return base64.b64encode(b).decode()

def sha256(b):
    return b64(hashlib.sha256(b).digest())

def crc32(b):
    return b64(zlib.crc32(b).to_bytes(4, "big"))

s3.create_bucket(Bucket=B)

# A PUT with a checksum: returned with checksum mode only.
body = b"A" * 1024
r = s3.put_object(Bucket=B, Key="a", Body=body, ChecksumAlgorithm="SHA256")
print("put", r["ChecksumSHA256"] == sha256(body), r.get("ChecksumType"))
h = s3.head_object(Bucket=B, Key="a")
print("head", "ChecksumSHA256" in h)
h = s3.head_object(Bucket=B, Key="a", ChecksumMode="ENABLED")
print("head-mode", h["ChecksumSHA256"] == sha256(body), h["ChecksumType"])
g = s3.get_object(Bucket=B, Key="a", ChecksumMode="ENABLED")
print("get-mode", g["ChecksumSHA256"] == sha256(g["Body"].read()))
g = s3.get_object(Bucket=B, Key="a", ChecksumMode="ENABLED", Range="bytes=0-9")
print("range", "ChecksumSHA256" in g, len(g["Body"].read()))

# A wrong checksum: BadDigest, and nothing written (a new key stays absent,
# an existing one keeps its content).
print("bad-new", code(lambda: s3.put_object(Bucket=B, Key="b", Body=body, ChecksumSHA256=sha256(b"other"))))
print("absent", code(lambda: s3.head_object(Bucket=B, Key="b")))
print("bad-existing", code(lambda: s3.put_object(Bucket=B, Key="a", Body=b"replaced", ChecksumCRC32=crc32(b"other"))))
print("kept", s3.get_object(Bucket=B, Key="a")["Body"].read() == body)
# A document's checksum (DeleteObjects, which SDKs always send one with).
print("delete-objects", len(s3.delete_objects(Bucket=B, Delete={"Objects": [{"Key": "none"}]})["Deleted"]))
print("two", code(lambda: s3.put_object(Bucket=B, Key="b", Body=b"x", ChecksumCRC32=crc32(b"x"), ChecksumSHA1="AAAA")))

# The checksum as an aws-chunked trailer (what SDKs send over TLS).
u = urllib.parse.urlparse(os.environ["S3_ENDPOINT"])
def trailed(key, data, value):
    c = http.client.HTTPConnection(u.hostname, u.port)
    chunked = b"%x\r\n%s\r\n0\r\nx-amz-checksum-crc32:%s\r\n\r\n" % (len(data), data, value.encode())
    c.request("PUT", "/%s/%s" % (B, key), body=chunked, headers={
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
        "content-encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(len(data)),
        "x-amz-trailer": "x-amz-checksum-crc32",
    })
    r = c.getresponse()
    return r.status, r.read()
status, _ = trailed("t", b"hello", crc32(b"hello"))
h = s3.head_object(Bucket=B, Key="t", ChecksumMode="ENABLED")
print("trailer", status, h["ChecksumCRC32"] == crc32(b"hello"))
status, err = trailed("t2", b"hello", crc32(b"world"))
print("bad-trailer", status, b"<Code>BadDigest</Code>" in err, code(lambda: s3.head_object(Bucket=B, Key="t2")))
c = http.client.HTTPConnection(u.hostname, u.port)
c.request("POST", "/%s?delete" % B, body=b"<Delete><Object><Key>a</Key></Object></Delete>",
          headers={"x-amz-checksum-crc32": crc32(b"other")})
r = c.getresponse()
print("bad-delete", r.status, b"<Code>BadDigest</Code>" in r.read(), s3.head_object(Bucket=B, Key="a")["ContentLength"])

# A multipart upload with SHA256: composite checksum.
parts = [b"P" * (5 * 1024 * 1024), b"Q" * 100]
up = s3.create_multipart_upload(Bucket=B, Key="mp", ChecksumAlgorithm="SHA256")
print("create", up["ChecksumAlgorithm"], up["ChecksumType"])
listed = []
for i, data in enumerate(parts):
    r = s3.upload_part(Bucket=B, Key="mp", UploadId=up["UploadId"], PartNumber=i + 1, Body=data,
                       ChecksumAlgorithm="SHA256")
    listed.append({"PartNumber": i + 1, "ETag": r["ETag"], "ChecksumSHA256": r["ChecksumSHA256"]})
print("parts", [p["ChecksumSHA256"] == sha256(d) for p, d in zip(listed, parts)])
lp = s3.list_parts(Bucket=B, Key="mp", UploadId=up["UploadId"])
print("list-parts", lp["ChecksumAlgorithm"], [p["ChecksumSHA256"] == sha256(d) for p, d in zip(lp["Parts"], parts)])
composite = sha256(b"".join(hashlib.sha256(d).digest() for d in parts)) + "-2"
print("bad-complete", code(lambda: s3.complete_multipart_upload(
    Bucket=B, Key="mp", UploadId=up["UploadId"], ChecksumSHA256=sha256(b"x") + "-2",
    MultipartUpload={"Parts": listed})), code(lambda: s3.head_object(Bucket=B, Key="mp")))
wrong_part = [dict(listed[0], ChecksumSHA256=sha256(b"x")), listed[1]]
print("wrong-part", code(lambda: s3.complete_multipart_upload(
    Bucket=B, Key="mp", UploadId=up["UploadId"], MultipartUpload={"Parts": wrong_part})))
r = s3.complete_multipart_upload(Bucket=B, Key="mp", UploadId=up["UploadId"], ChecksumSHA256=composite,
                                 MultipartUpload={"Parts": listed})
print("complete", r["ChecksumSHA256"] == composite, r["ChecksumType"])
h = s3.head_object(Bucket=B, Key="mp", ChecksumMode="ENABLED")
print("head-mp", h["ChecksumSHA256"] == composite, h["ChecksumType"])
g = s3.get_object(Bucket=B, Key="mp", PartNumber=2, ChecksumMode="ENABLED")
print("part-2", g["ChecksumSHA256"] == sha256(parts[1]), g["Body"].read() == parts[1])
a = s3.get_object_attributes(Bucket=B, Key="mp", ObjectAttributes=["Checksum", "ObjectParts", "ObjectSize"])
print("attributes", a["Checksum"]["ChecksumSHA256"] == composite, a["ObjectParts"]["TotalPartsCount"],
      [p["ChecksumSHA256"] == sha256(d) for p, d in zip(a["ObjectParts"]["Parts"], parts)], a["ObjectSize"])

# CRC32 over the whole object (FULL_OBJECT), combined from the parts'.
up = s3.create_multipart_upload(Bucket=B, Key="full", ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT")
listed = []
for i, data in enumerate(parts):
    r = s3.upload_part(Bucket=B, Key="full", UploadId=up["UploadId"], PartNumber=i + 1, Body=data,
                       ChecksumAlgorithm="CRC32")
    listed.append({"PartNumber": i + 1, "ETag": r["ETag"], "ChecksumCRC32": r["ChecksumCRC32"]})
r = s3.complete_multipart_upload(Bucket=B, Key="full", UploadId=up["UploadId"], MultipartUpload={"Parts": listed})
print("full", r["ChecksumCRC32"] == crc32(b"".join(parts)), r["ChecksumType"])
g = s3.get_object(Bucket=B, Key="full", ChecksumMode="ENABLED")
print("get-full", g["ChecksumCRC32"] == crc32(g["Body"].read()))
# Copies: the source's checksum, or the one asked for; a composite one does
# not describe a one-part copy.
s3.copy_object(Bucket=B, Key="a-copy", CopySource=B + "/a")
h = s3.head_object(Bucket=B, Key="a-copy", ChecksumMode="ENABLED")
print("copy", h["ChecksumSHA256"] == sha256(body))
r = s3.copy_object(Bucket=B, Key="a-crc", CopySource=B + "/a", ChecksumAlgorithm="CRC32")
h = s3.head_object(Bucket=B, Key="a-crc", ChecksumMode="ENABLED")
print("copy-crc", r["CopyObjectResult"]["ChecksumCRC32"] == crc32(body), h["ChecksumCRC32"] == crc32(body))
s3.copy_object(Bucket=B, Key="mp-copy", CopySource=B + "/mp")
print("copy-mp", [k for k in s3.head_object(Bucket=B, Key="mp-copy", ChecksumMode="ENABLED") if k.startswith("Checksum")])
print("sha-full", code(lambda: s3.create_multipart_upload(Bucket=B, Key="x", ChecksumAlgorithm="SHA1",
                                                          ChecksumType="FULL_OBJECT")))
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_checksums_are_verified_kept_and_returned() {
    let served = common::serve().await;
    let out = served.python(SCRIPT).await;
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "put True FULL_OBJECT",
            "head False",
            "head-mode True FULL_OBJECT",
            "get-mode True",
            "range False 10",
            "bad-new BadDigest",
            "absent 404",
            "bad-existing BadDigest",
            "kept True",
            "delete-objects 1",
            "two InvalidRequest",
            "trailer 200 True",
            "bad-trailer 400 True 404",
            "bad-delete 400 True 1024",
            "create SHA256 COMPOSITE",
            "parts [True, True]",
            "list-parts SHA256 [True, True]",
            "bad-complete BadDigest 404",
            "wrong-part InvalidPart",
            "complete True COMPOSITE",
            "head-mp True COMPOSITE",
            "part-2 True True",
            "attributes True 2 [True, True] 5242980",
            "full True FULL_OBJECT",
            "get-full True",
            "copy True",
            "copy-crc True True",
            "copy-mp []",
            "sha-full InvalidRequest",
        ],
        "{out}"
    );
    // The checksums are kept in the object's attributes record (which
    // extracts carry); the refused PUT wrote nothing.
    let pfs = &served.pfs;
    let (_, index) = pfs.branch_head("sums", "master").await.unwrap().unwrap();
    let mp = index.get("/mp").await.unwrap().unwrap();
    let attrs = pfs
        .file_attrs("sums", "/mp", &mp.hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(attrs["checksum"]["algorithm"], "SHA256");
    assert_eq!(attrs["checksum"]["type"], "COMPOSITE");
    assert_eq!(attrs["part_checksums"].as_array().map(Vec::len), Some(2));
    assert!(index.get("/b").await.unwrap().is_none());
    served.stop().await;
}
