//! A whole syscall table compiled into one filter that *searches* instead of scanning.
//!
//! seccompiler compiles a filter into a linear chain, one comparison per listed syscall tried
//! in order. That is slow to install: the kernel converts and JITs every instruction, and
//! `seccomp_cache_prepare()` emulates the filter once for every syscall number of every
//! architecture, each time walking the chain. This module turns a table "syscall number →
//! [`SyscallRule`]" into a balanced binary search over syscall-number ranges instead:
//!
//! ```text
//!     ld  [arch]
//!     jeq AUDIT_ARCH, +1, +0      ; the native architecture only, like seccompiler
//!     ret KILL_PROCESS
//!     ld  [nr]
//!     <search over the ranges>
//! ```
//!
//! Consecutive numbers with the same verdict form one range; the ranges cover every 32-bit
//! number (those between and after the table's entries get the default). The search over
//! ranges `r[0..n]` splits at `m = n / 2`:
//!
//! ```text
//!     jge r[m].start, +len(below), +0
//!     <search over r[0..m]>               ; "below"
//!     <search over r[m..n]>               ; "above"
//! ```
//!
//! and a single range is its leaf: `ret ACTION`, or for a [`SyscallRule::Check`] a few
//! instructions testing one argument. cBPF's conditional jump offsets are a `u8`; when
//! `below` is longer than 255 instructions the split becomes `jge r[m].start, +0, +1;
//! ja +len(below)` (`ja` takes a 32-bit offset). A table of `n` ranges gives a program of
//! about `2n + 4` instructions in which any syscall number is decided after `⌈log2 n⌉`
//! comparisons.

use std::collections::BTreeMap;

use seccompiler::{sock_filter, BpfProgram, SeccompAction, TargetArch};

use super::eval::{AUDIT_ARCH_AARCH64, AUDIT_ARCH_X86_64};
use super::SeccompError;

/// AUDIT_ARCH_RISCV64.
pub const AUDIT_ARCH_RISCV64: u32 = 0xC000_00F3;

/// The most instructions the kernel accepts in one filter (BPF_MAXINSNS).
pub const BPF_MAX_LEN: usize = 4096;

// Classic BPF opcodes (linux/bpf_common.h), the subset this module emits.
const LD_W_ABS: u16 = 0x20;
const JMP_JA: u16 = 0x05;
const JMP_JEQ_K: u16 = 0x15;
const JMP_JGE_K: u16 = 0x35;
const JMP_JSET_K: u16 = 0x45;
const RET_K: u16 = 0x06;

// Byte offsets in `struct seccomp_data`.
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;
const ARGS_OFFSET: u32 = 16;

/// What a filter does with one syscall number (not a run verdict: see `crate::result`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyscallRule {
    /// This action, whatever the arguments.
    Fixed(SeccompAction),
    /// Depends on one argument.
    Check(ArgCheck),
}

/// `pass` if argument `arg` passes `test`, else `fail`.
///
/// Only the low 32 bits of the argument are compared: every argument checked this way is an
/// `int` (or has all its flags there), and the kernel ignores the high half of `int`
/// arguments, so junk in the high half can neither fail nor bypass the check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgCheck {
    /// The argument, 0 to 5.
    pub arg: u8,
    pub test: ArgTest,
    pub pass: SeccompAction,
    pub fail: SeccompAction,
}

/// A test of the low 32 bits of one argument. Values must fit in 32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArgTest {
    /// No bit of the mask is set.
    NoBits(u64),
    /// Equal to one of the values (at least one).
    In(&'static [u64]),
    /// Equal to none of the values (at least one).
    NotIn(&'static [u64]),
}

/// The audit architecture value a filter for `arch` checks, the same seccompiler uses.
pub fn audit_arch(arch: TargetArch) -> u32 {
    match arch {
        TargetArch::x86_64 => AUDIT_ARCH_X86_64,
        TargetArch::aarch64 => AUDIT_ARCH_AARCH64,
        TargetArch::riscv64 => AUDIT_ARCH_RISCV64,
    }
}

/// Compiles `table` (every number not in it gets `default`) into one filter for `arch`:
/// any other architecture is killed, the rest decided by a binary search.
pub fn compile(
    arch: TargetArch,
    table: &BTreeMap<u32, SyscallRule>,
    default: SeccompAction,
) -> Result<BpfProgram, SeccompError> {
    let default = SyscallRule::Fixed(default);
    let mut program = arch_check(audit_arch(arch));
    program.push(stmt(LD_W_ABS, NR_OFFSET));
    program.extend(search(&ranges(table, &default))?);
    if program.len() > BPF_MAX_LEN {
        return Err(error(format!(
            "{} instructions, more than the kernel's {BPF_MAX_LEN}",
            program.len()
        )));
    }
    Ok(program)
}

/// Kills the process unless the syscall comes from architecture `audit_arch`.
fn arch_check(audit_arch: u32) -> Vec<sock_filter> {
    vec![
        stmt(LD_W_ABS, ARCH_OFFSET),
        jump(JMP_JEQ_K, audit_arch, 1, 0),
        ret(&SeccompAction::KillProcess),
    ]
}

/// A run of syscall numbers, from `start` up to the next range's start, with one verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range<'a> {
    start: u32,
    verdict: &'a SyscallRule,
}

/// The table as ranges covering `0..=u32::MAX` in ascending order, neighbours with equal
/// verdicts merged (so neighbouring ranges always differ).
fn ranges<'a>(table: &'a BTreeMap<u32, SyscallRule>, default: &'a SyscallRule) -> Vec<Range<'a>> {
    let mut ranges = Vec::with_capacity(2 * table.len() + 1);
    // The first number not yet covered; None once u32::MAX is.
    let mut next = Some(0u32);
    for (&nr, verdict) in table {
        if let Some(gap) = next.filter(|&first| first < nr) {
            ranges.push(Range {
                start: gap,
                verdict: default,
            });
        }
        ranges.push(Range { start: nr, verdict });
        next = nr.checked_add(1);
    }
    if let Some(rest) = next {
        ranges.push(Range {
            start: rest,
            verdict: default,
        });
    }
    ranges.dedup_by(|later, earlier| later.verdict == earlier.verdict);
    ranges
}

/// The binary search over `ranges` (ascending, non-empty), the syscall number in the
/// accumulator.
fn search(ranges: &[Range]) -> Result<Vec<sock_filter>, SeccompError> {
    match ranges {
        [] => Err(error("no ranges to search".to_string())),
        [only] => leaf(only.verdict),
        _ => {
            let (below, above) = ranges.split_at(ranges.len() / 2);
            let below = search(below)?;
            let mut code = split(above[0].start, below.len())?;
            code.extend(below);
            code.extend(search(above)?);
            Ok(code)
        }
    }
}

/// Jumps over the next `skip` instructions (the search below `at`) if the number is `>= at`.
fn split(at: u32, skip: usize) -> Result<Vec<sock_filter>, SeccompError> {
    Ok(match u8::try_from(skip) {
        Ok(skip) => vec![jump(JMP_JGE_K, at, skip, 0)],
        // Too far for a conditional jump: fall through to an unconditional one.
        Err(_) => {
            let skip = u32::try_from(skip).map_err(|_| error(format!("jump of {skip}")))?;
            vec![jump(JMP_JGE_K, at, 0, 1), stmt(JMP_JA, skip)]
        }
    })
}

/// The code deciding one range.
fn leaf(verdict: &SyscallRule) -> Result<Vec<sock_filter>, SeccompError> {
    match verdict {
        SyscallRule::Fixed(action) => Ok(vec![ret(action)]),
        SyscallRule::Check(check) => arg_check(check),
    }
}

/// Loads the low half of the argument and returns `pass` or `fail`.
fn arg_check(check: &ArgCheck) -> Result<Vec<sock_filter>, SeccompError> {
    if check.arg > 5 {
        return Err(error(format!("there is no argument {}", check.arg)));
    }
    // struct seccomp_data's args are u64; the low half comes first on the little-endian
    // architectures TargetArch has.
    let mut code = vec![stmt(LD_W_ABS, ARGS_OFFSET + 8 * u32::from(check.arg))];
    match check.test {
        ArgTest::NoBits(mask) => code.extend([
            jump(JMP_JSET_K, low_word(mask)?, 1, 0),
            ret(&check.pass),
            ret(&check.fail),
        ]),
        ArgTest::In(values) => code.extend(equal_to_any(values, &check.pass, &check.fail)?),
        ArgTest::NotIn(values) => code.extend(equal_to_any(values, &check.fail, &check.pass)?),
    }
    Ok(code)
}

/// `on_match` if the accumulator equals one of `values`, else `on_miss`.
fn equal_to_any(
    values: &[u64],
    on_match: &SeccompAction,
    on_miss: &SeccompAction,
) -> Result<Vec<sock_filter>, SeccompError> {
    if values.is_empty() {
        return Err(error("an argument test without values".to_string()));
    }
    // jeq v0; jeq v1; ...; ret on_miss; ret on_match — the i-th jeq skips the n - 1 - i
    // comparisons after it and the `ret on_miss`.
    let mut code = Vec::with_capacity(values.len() + 2);
    for (i, &value) in values.iter().enumerate() {
        let skip = u8::try_from(values.len() - i)
            .map_err(|_| error(format!("{} values in one argument test", values.len())))?;
        code.push(jump(JMP_JEQ_K, low_word(value)?, skip, 0));
    }
    code.push(ret(on_miss));
    code.push(ret(on_match));
    Ok(code)
}

/// `value` as the 32-bit word the filter compares the argument's low half with.
fn low_word(value: u64) -> Result<u32, SeccompError> {
    u32::try_from(value).map_err(|_| {
        error(format!(
            "{value:#x} does not fit the 32 bits that are compared"
        ))
    })
}

fn stmt(code: u16, k: u32) -> sock_filter {
    jump(code, k, 0, 0)
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code, jt, jf, k }
}

fn ret(action: &SeccompAction) -> sock_filter {
    stmt(RET_K, u32::from(action.clone()))
}

fn error(message: String) -> SeccompError {
    SeccompError::Compile(format!("syscall tree: {message}"))
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use seccompiler::SeccompFilter;

    use super::super::eval::{run_program, AUDIT_ARCH_I386};
    use super::*;

    const ALLOW: SeccompAction = SeccompAction::Allow;
    const EPERM: SeccompAction = SeccompAction::Errno(1);

    fn arch() -> TargetArch {
        super::super::native_arch().unwrap()
    }

    fn query(nr: u32, args: [u64; 6]) -> super::super::SyscallQuery {
        super::super::SyscallQuery {
            arch: audit_arch(arch()),
            nr: nr as i32,
            instruction_pointer: 0,
            args,
        }
    }

    /// What the table says, straight from the table.
    fn lookup(
        table: &BTreeMap<u32, SyscallRule>,
        default: &SeccompAction,
        nr: u32,
        args: &[u64; 6],
    ) -> u32 {
        let action = match table.get(&nr) {
            None => default,
            Some(SyscallRule::Fixed(action)) => action,
            Some(SyscallRule::Check(check)) => {
                let arg = args[usize::from(check.arg)] & 0xffff_ffff;
                let passes = match check.test {
                    ArgTest::NoBits(mask) => arg & mask == 0,
                    ArgTest::In(values) => values.contains(&arg),
                    ArgTest::NotIn(values) => !values.contains(&arg),
                };
                if passes {
                    &check.pass
                } else {
                    &check.fail
                }
            }
        };
        u32::from(action.clone())
    }

    /// Every jump lands inside the program, every path ends in a return, only the opcodes
    /// above are used.
    fn assert_well_formed(program: &[sock_filter]) {
        assert!(program.len() <= BPF_MAX_LEN);
        assert_eq!(program.last().map(|i| i.code), Some(RET_K));
        for (pc, insn) in program.iter().enumerate() {
            let targets: Vec<usize> = match insn.code {
                JMP_JA => vec![pc + 1 + insn.k as usize],
                JMP_JEQ_K | JMP_JGE_K | JMP_JSET_K => {
                    vec![pc + 1 + usize::from(insn.jt), pc + 1 + usize::from(insn.jf)]
                }
                LD_W_ABS | RET_K => vec![],
                other => panic!("unexpected opcode {other:#x} at {pc}"),
            };
            for target in targets {
                assert!(target < program.len(), "jump from {pc} to {target}");
            }
        }
    }

    /// The numbers worth asking about: every entry, its neighbours, the ends, x32, and some
    /// random ones.
    fn probes(table: &BTreeMap<u32, SyscallRule>, rng: &mut StdRng) -> Vec<u32> {
        let mut probes = vec![0, 1, 0x4000_0000, 0x4000_0001, 0x7fff_ffff, u32::MAX];
        for &nr in table.keys() {
            probes.extend([nr.wrapping_sub(1), nr, nr.wrapping_add(1), nr | 0x4000_0000]);
        }
        probes.extend((0..50).map(|_| rng.random::<u32>()));
        probes
    }

    const VALUES_A: &[u64] = &[0, 3, 0xffff_ffff];
    const VALUES_B: &[u64] = &[7];

    fn random_verdict(rng: &mut StdRng) -> SyscallRule {
        let actions = [
            ALLOW,
            EPERM,
            SeccompAction::Errno(38),
            SeccompAction::KillProcess,
        ];
        let action = |rng: &mut StdRng| actions[rng.random_range(0..actions.len())].clone();
        if rng.random_bool(0.9) {
            return SyscallRule::Fixed(action(rng));
        }
        let test = match rng.random_range(0..4) {
            0 => ArgTest::NoBits(0x7e02_0000),
            1 => ArgTest::In(VALUES_A),
            2 => ArgTest::NotIn(VALUES_A),
            _ => ArgTest::In(VALUES_B),
        };
        SyscallRule::Check(ArgCheck {
            arg: rng.random_range(0..6),
            test,
            pass: action(rng),
            fail: action(rng),
        })
    }

    fn random_args(rng: &mut StdRng) -> [u64; 6] {
        let interesting = [0, 3, 7, 0x0002_0000, 0xffff_ffff, 0xdead_beef_0000_0003];
        std::array::from_fn(|_| {
            if rng.random_bool(0.7) {
                interesting[rng.random_range(0..interesting.len())]
            } else {
                rng.random()
            }
        })
    }

    #[test]
    fn random_tables_answer_like_a_direct_lookup() {
        let mut rng = StdRng::seed_from_u64(0x5eed);
        for round in 0..300 {
            let size = rng.random_range(0..400);
            let span = if round % 3 == 0 { 600 } else { u32::MAX };
            let table: BTreeMap<u32, SyscallRule> = (0..size)
                .map(|_| (rng.random_range(0..=span), random_verdict(&mut rng)))
                .collect();
            let default = [ALLOW, EPERM][round % 2].clone();
            let program = compile(arch(), &table, default.clone()).unwrap();
            assert_well_formed(&program);
            for nr in probes(&table, &mut rng) {
                let args = random_args(&mut rng);
                assert_eq!(
                    run_program(&program, &query(nr, args)).unwrap(),
                    lookup(&table, &default, nr, &args),
                    "round {round}, nr {nr:#x}, args {args:x?}"
                );
            }
        }
    }

    #[test]
    fn long_subtrees_are_jumped_over_with_ja() {
        // Alternating actions: every number is its own range, about 1400 of them.
        let table: BTreeMap<u32, SyscallRule> = (0..700)
            .map(|nr| (2 * nr, SyscallRule::Fixed(ALLOW)))
            .collect();
        let program = compile(arch(), &table, EPERM).unwrap();
        assert_well_formed(&program);
        assert!(program.iter().any(|i| i.code == JMP_JA), "no long jump");
        for nr in 0..1500 {
            let expected = if nr % 2 == 0 && nr < 1400 {
                ALLOW
            } else {
                EPERM
            };
            let got = run_program(&program, &query(nr, [0; 6])).unwrap();
            assert_eq!(got, u32::from(expected), "{nr}");
        }
    }

    #[test]
    fn consecutive_numbers_with_one_action_are_one_range() {
        let table: BTreeMap<u32, SyscallRule> = (10..=300)
            .map(|nr| (nr, SyscallRule::Fixed(ALLOW)))
            .chain([(301, SyscallRule::Fixed(EPERM))])
            .collect();
        let program = compile(arch(), &table, EPERM).unwrap();
        // 4 (arch check, load) + 3 ranges (EPERM, ALLOW, EPERM): 3 returns, 2 splits
        assert_eq!(program.len(), 9, "{program:?}");
        assert_eq!(
            compile(arch(), &BTreeMap::new(), ALLOW).unwrap().len(),
            5,
            "an empty table is one return"
        );
    }

    #[test]
    fn a_table_past_the_kernel_limit_is_an_error() {
        let table: BTreeMap<u32, SyscallRule> = (0..2100)
            .map(|nr| (2 * nr, SyscallRule::Fixed(ALLOW)))
            .collect();
        let e = compile(arch(), &table, EPERM).unwrap_err();
        assert!(e.to_string().contains("4096"), "{e}");
    }

    #[test]
    fn other_architectures_are_killed() {
        let table = BTreeMap::from([(1, SyscallRule::Fixed(ALLOW))]);
        let program = compile(arch(), &table, ALLOW).unwrap();
        let kill = u32::from(SeccompAction::KillProcess);
        for foreign in [AUDIT_ARCH_I386, AUDIT_ARCH_RISCV64 ^ 1, 0] {
            let mut q = query(1, [0; 6]);
            q.arch = foreign;
            assert_eq!(run_program(&program, &q).unwrap(), kill, "{foreign:#x}");
        }
    }

    #[test]
    fn the_architecture_check_is_seccompilers() {
        for arch in [TargetArch::x86_64, TargetArch::aarch64, TargetArch::riscv64] {
            let reference = BpfProgram::try_from(
                SeccompFilter::new(BTreeMap::new(), ALLOW, EPERM, arch).unwrap(),
            )
            .unwrap();
            let ours = compile(arch, &BTreeMap::new(), ALLOW).unwrap();
            assert_eq!(ours[..3], reference[..3], "{arch:?}");
        }
    }

    #[test]
    fn argument_checks_compare_the_low_half_only() {
        let check = |test| {
            SyscallRule::Check(ArgCheck {
                arg: 1,
                test,
                pass: ALLOW,
                fail: EPERM,
            })
        };
        let table = BTreeMap::from([
            (10, check(ArgTest::NoBits(0x10))),
            (11, check(ArgTest::In(&[5, 6]))),
            (12, check(ArgTest::NotIn(&[5, 6]))),
        ]);
        let program = compile(arch(), &table, SeccompAction::KillProcess).unwrap();
        let run = |nr, arg1: u64| {
            let got = run_program(&program, &query(nr, [0, arg1, 0, 0, 0, 0])).unwrap();
            got == u32::from(ALLOW)
        };
        let high = 0xffff_ffff_0000_0000;
        assert!(run(10, 0x0f) && run(10, high) && !run(10, 0x10) && !run(10, high | 0x10));
        assert!(run(11, 5) && run(11, high | 6) && !run(11, 7) && !run(11, high));
        assert!(!run(12, 5) && !run(12, high | 6) && run(12, 7) && run(12, high));
    }

    #[test]
    fn argument_checks_that_cannot_be_compiled_are_errors() {
        let with = |arg, test| {
            let check = ArgCheck {
                arg,
                test,
                pass: ALLOW,
                fail: EPERM,
            };
            let table = BTreeMap::from([(1, SyscallRule::Check(check))]);
            compile(arch(), &table, EPERM).map(drop)
        };
        assert!(with(6, ArgTest::NoBits(1)).is_err(), "argument 6");
        assert!(with(0, ArgTest::NoBits(1 << 32)).is_err(), "64-bit mask");
        assert!(with(0, ArgTest::In(&[1 << 40])).is_err(), "64-bit value");
        assert!(with(0, ArgTest::In(&[])).is_err(), "no values");
        assert!(with(0, ArgTest::NotIn(&[])).is_err(), "no values");
        assert!(with(5, ArgTest::NotIn(&[0xffff_ffff])).is_ok());
    }
}
