//! After 200 runs, killed ones included, nothing of sandcell is left on the host: no cell
//! cgroup under our own cgroup, no mount, no process. (Its own test binary, so no other test
//! runs cells at the same time.)

mod common;

#[test]
fn two_hundred_runs_leave_no_cgroups_mounts_or_processes() {
    let Some(r) = common::setup() else { return };
    let mounts_before = common::mount_count();
    let cells_before = common::cell_cgroups();
    let marker = format!("77.{}", std::process::id());
    for i in 0..200 {
        let sleeper = format!("(sleep {marker} &); sleep {marker}");
        let (args, cmd): (&[&str], &[&str]) = match i % 5 {
            0 => (&["--wall-time", "100ms"], &["/bin/sh", "-c", &sleeper]),
            1 => (&["--output-limit", "1K"], &["/bin/sh", "-c", "yes"]),
            2 => (&[], &["/bin/sh", "-c", "kill -9 $$"]),
            3 => (&[], &["/bin/nope"]),
            _ => (&[], &["/bin/true"]),
        };
        let (json, _) = common::run_json(&r, args, cmd);
        let expected = ["TO", "OLE", "SG", "XX", "OK"][i % 5];
        assert_eq!(json["verdict"], expected, "run {i}: {json}");
    }
    // Cells of processes still alive (e.g. a daemon of another test suite) are in use; a
    // cell whose creating process is gone is a leak. Cell names start with the creator's pid.
    let leaked: Vec<_> = common::cell_cgroups()
        .into_iter()
        .filter(|p| !cells_before.contains(p))
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let creator = name.split('-').next().unwrap_or("").to_string();
            !std::path::Path::new("/proc").join(creator).exists()
        })
        .collect();
    assert_eq!(
        leaked,
        Vec::<std::path::PathBuf>::new(),
        "cell cgroups left behind"
    );
    assert_eq!(common::mount_count(), mounts_before, "mounts left behind");
    assert_eq!(
        common::host_processes_with(&format!("sleep\0{marker}")),
        Vec::<String>::new()
    );
}
