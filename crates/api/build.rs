//! Generates the messages, clients and servers of every .proto file under
//! proto/, and the descriptor set the JSON mapping (`json`) reads names from.

use std::path::PathBuf;

fn protos(dir: &std::path::Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            protos(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let mut files = Vec::new();
    protos(std::path::Path::new("proto"), &mut files)?;
    files.sort();
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let mut config = prost_build::Config::new();
    config.enable_type_names();
    // put file's content arrives in messages of up to 64 MiB: as `Bytes`
    // it is a view of the received buffer instead of a copy of it.
    config.bytes([".pfs.PutFileRequest.value"]);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("descriptors.bin"))
        .compile_with_config(config, &files, &[PathBuf::from("proto")])?;
    Ok(())
}
