//! A dry run of compiled filters: what would the kernel answer to one syscall?
//!
//! Interprets the classic-BPF subset seccompiler emits (absolute word loads from
//! `struct seccomp_data`, AND with a constant, conditional/unconditional forward jumps,
//! return constant) and combines the filters the way the kernel does: every filter runs, the
//! most restrictive action wins, and among equal actions the most recently installed
//! filter's value (e.g. its errno) wins. Used by the tests and to explain policies; the
//! kernel, not this, enforces them.

use seccompiler::sock_filter;

use super::SeccompError;

/// AUDIT_ARCH_X86_64.
pub const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
/// AUDIT_ARCH_I386 (what `int 0x80` from a 64-bit process reports).
pub const AUDIT_ARCH_I386: u32 = 0x4000_0003;
/// AUDIT_ARCH_AARCH64.
pub const AUDIT_ARCH_AARCH64: u32 = 0xC000_00B7;

/// The audit architecture of the running build.
pub const fn native_audit_arch() -> u32 {
    if cfg!(target_arch = "aarch64") {
        AUDIT_ARCH_AARCH64
    } else {
        AUDIT_ARCH_X86_64
    }
}

/// The part of the kernel's `struct seccomp_data` a filter can look at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyscallQuery {
    pub arch: u32,
    pub nr: i32,
    pub instruction_pointer: u64,
    pub args: [u64; 6],
}

impl SyscallQuery {
    /// A syscall of the native architecture with the given arguments (missing ones are 0).
    pub fn native(nr: i64, args: &[u64]) -> Self {
        let mut all = [0u64; 6];
        for (slot, value) in all.iter_mut().zip(args) {
            *slot = *value;
        }
        SyscallQuery {
            arch: native_audit_arch(),
            nr: nr as i32,
            instruction_pointer: 0,
            args: all,
        }
    }

    /// The 32-bit word at byte `offset` of `struct seccomp_data` (little endian).
    fn word(&self, offset: u32) -> Option<u32> {
        let arg_word = |i: u32| {
            let arg = *self.args.get(i as usize / 2)?;
            Some(if i & 1 == 0 {
                arg as u32
            } else {
                (arg >> 32) as u32
            })
        };
        match offset {
            0 => Some(self.nr as u32),
            4 => Some(self.arch),
            8 => Some(self.instruction_pointer as u32),
            12 => Some((self.instruction_pointer >> 32) as u32),
            16..=60 if offset & 3 == 0 => arg_word((offset - 16) / 4),
            _ => None,
        }
    }
}

/// What the kernel does with a syscall.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeccompOutcome {
    KillProcess,
    KillThread,
    Trap,
    Errno(u32),
    UserNotif,
    Trace(u32),
    Log,
    Allow,
}

const RET_ACTION_FULL: u32 = 0xffff_0000;
const RET_DATA: u32 = 0x0000_ffff;

impl SeccompOutcome {
    fn from_ret(ret: u32) -> Self {
        let data = ret & RET_DATA;
        match ret & RET_ACTION_FULL {
            0x8000_0000 => SeccompOutcome::KillProcess,
            0x0000_0000 => SeccompOutcome::KillThread,
            0x0003_0000 => SeccompOutcome::Trap,
            0x0005_0000 => SeccompOutcome::Errno(data),
            0x7fc0_0000 => SeccompOutcome::UserNotif,
            0x7ff0_0000 => SeccompOutcome::Trace(data),
            0x7ffc_0000 => SeccompOutcome::Log,
            0x7fff_0000 => SeccompOutcome::Allow,
            // The kernel treats unknown actions as KILL_PROCESS.
            _ => SeccompOutcome::KillProcess,
        }
    }
}

// Classic BPF opcodes (linux/bpf_common.h).
const BPF_LD_W_ABS: u16 = 0x20;
const BPF_ALU_AND_K: u16 = 0x54;
const BPF_JMP_JA: u16 = 0x05;
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_JMP_JGT_K: u16 = 0x25;
const BPF_JMP_JGE_K: u16 = 0x35;
const BPF_JMP_JSET_K: u16 = 0x45;
const BPF_RET_K: u16 = 0x06;

/// Runs one filter program on `query` and returns its raw return value.
pub fn run_program(program: &[sock_filter], query: &SyscallQuery) -> Result<u32, SeccompError> {
    let bad = |pc: usize, what: &str| SeccompError::Compile(format!("BPF at {pc}: {what}"));
    let mut acc: u32 = 0;
    let mut pc = 0usize;
    while let Some(insn) = program.get(pc) {
        let mut next = pc + 1;
        let branch = |taken: bool| next + usize::from(if taken { insn.jt } else { insn.jf });
        match insn.code {
            BPF_LD_W_ABS => {
                acc = query
                    .word(insn.k)
                    .ok_or_else(|| bad(pc, "load outside seccomp_data"))?;
            }
            BPF_ALU_AND_K => acc &= insn.k,
            BPF_JMP_JA => next += insn.k as usize,
            BPF_JMP_JEQ_K => next = branch(acc == insn.k),
            BPF_JMP_JGT_K => next = branch(acc > insn.k),
            BPF_JMP_JGE_K => next = branch(acc >= insn.k),
            BPF_JMP_JSET_K => next = branch(acc & insn.k != 0),
            BPF_RET_K => return Ok(insn.k),
            other => return Err(bad(pc, &format!("unsupported opcode {other:#x}"))),
        }
        pc = next;
    }
    Err(bad(pc, "program ran off its end"))
}

/// Runs every program (given in install order) like the kernel does and returns the outcome.
pub fn evaluate<'a>(
    programs: impl DoubleEndedIterator<Item = &'a [sock_filter]>,
    query: &SyscallQuery,
) -> Result<SeccompOutcome, SeccompError> {
    // kernel/seccomp.c seccomp_run_filters: newest filter first; a later (older) result
    // replaces the current one only if its action is strictly more restrictive, comparing
    // the action bits as a signed number.
    let mut ret = 0x7fff_0000u32; // SECCOMP_RET_ALLOW
    for program in programs.rev() {
        let current = run_program(program, query)?;
        if ((current & RET_ACTION_FULL) as i32) < ((ret & RET_ACTION_FULL) as i32) {
            ret = current;
        }
    }
    Ok(SeccompOutcome::from_ret(ret))
}
