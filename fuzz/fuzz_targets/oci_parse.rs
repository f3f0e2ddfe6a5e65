//! AFL++ target: see `sandcell_fuzz::oci_parse`.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        sandcell_fuzz::oci_parse(data);
    });
}
