//! Runs every file of a corpus directory (or single files) through a harness, without a
//! fuzzer: `replay unpack_tar|oci_parse PATH...`. A panic names the input that caused it.

fn main() {
    let mut args = std::env::args().skip(1);
    let target = args.next().unwrap_or_default();
    let harness: fn(&[u8]) = match target.as_str() {
        "unpack_tar" => sandcell_fuzz::unpack_tar,
        "oci_parse" => sandcell_fuzz::oci_parse,
        _ => {
            eprintln!("usage: replay unpack_tar|oci_parse PATH...");
            std::process::exit(2);
        }
    };
    let mut inputs = Vec::new();
    for path in args.map(std::path::PathBuf::from) {
        match std::fs::read_dir(&path) {
            Ok(dir) => inputs.extend(dir.flatten().map(|e| e.path()).filter(|p| p.is_file())),
            Err(_) => inputs.push(path),
        }
    }
    inputs.sort();
    for input in &inputs {
        let data = std::fs::read(input).unwrap_or_else(|e| panic!("{}: {e}", input.display()));
        eprintln!("replay {target} {}", input.display());
        harness(&data);
    }
    println!("replay {target}: {} inputs, no crash", inputs.len());
}
