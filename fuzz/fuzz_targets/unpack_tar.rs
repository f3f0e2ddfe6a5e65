//! AFL++ target: see `sandcell_fuzz::unpack_tar`.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        sandcell_fuzz::unpack_tar(data);
    });
}
