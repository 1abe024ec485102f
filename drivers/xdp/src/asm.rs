//! A tiny eBPF assembler: just the instructions the XDP program needs,
//! with forward labels for jumps.
//!
//! Encoding (include/uapi/linux/bpf.h, `struct bpf_insn`): one byte opcode
//! (class | size/op | mode/source), one byte with `dst_reg` in the low and
//! `src_reg` in the high nibble, a signed 16-bit offset and a signed 32-bit
//! immediate. Jump offsets count instructions from the one after the jump.

/// One eBPF instruction, as the kernel reads it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Insn {
    pub code: u8,
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Self {
        Self {
            code,
            regs: (src << 4) | (dst & 0x0f),
            off,
            imm,
        }
    }

    /// The 8 bytes of this instruction on a little-endian machine.
    #[cfg(test)]
    pub(crate) fn to_bytes(self) -> [u8; 8] {
        let mut b = [0u8; 8];
        b[0] = self.code;
        b[1] = self.regs;
        b[2..4].copy_from_slice(&self.off.to_le_bytes());
        b[4..8].copy_from_slice(&self.imm.to_le_bytes());
        b
    }
}

// Instruction classes.
const LD: u8 = 0x00;
const LDX: u8 = 0x01;
const STX: u8 = 0x03;
const JMP: u8 = 0x05;
const ALU64: u8 = 0x07;
// Sizes and modes.
const IMM: u8 = 0x00;
const MEM: u8 = 0x60;
/// Operand sizes of loads and stores.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Size {
    /// 32 bits.
    W = 0x00,
    /// 16 bits.
    H = 0x08,
    /// 8 bits.
    B = 0x10,
    /// 64 bits.
    DW = 0x18,
}
// Sources.
const K: u8 = 0x00;
const X: u8 = 0x08;

/// ALU operations.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Alu {
    Add = 0x00,
    And = 0x50,
    Lsh = 0x60,
    Mov = 0xb0,
}

/// Conditional jumps (unsigned comparisons).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Jmp {
    Eq = 0x10,
    Gt = 0x20,
    Ne = 0x50,
    Lt = 0xa0,
}

const CALL: u8 = 0x80;
const EXIT: u8 = 0x90;
const JA: u8 = 0x00;

/// `ld_imm64` source register meaning "imm is a map fd".
const PSEUDO_MAP_FD: u8 = 1;

/// Registers r0..r10.
pub(crate) type Reg = u8;
pub(crate) const R0: Reg = 0;
pub(crate) const R1: Reg = 1;
pub(crate) const R2: Reg = 2;
pub(crate) const R3: Reg = 3;
pub(crate) const R4: Reg = 4;
pub(crate) const R5: Reg = 5;
pub(crate) const R6: Reg = 6;
/// The read-only frame pointer.
pub(crate) const R10: Reg = 10;

/// A jump target, bound later with [`Asm::bind`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Label(usize);

/// Collects instructions and resolves labels.
#[derive(Default)]
pub(crate) struct Asm {
    insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
    fixups: Vec<(usize, Label)>,
}

impl Asm {
    pub(crate) fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// Makes `label` point at the next instruction.
    pub(crate) fn bind(&mut self, label: Label) {
        self.labels[label.0] = Some(self.insns.len());
    }

    pub(crate) fn alu64_imm(&mut self, op: Alu, dst: Reg, imm: i32) {
        self.insns
            .push(Insn::new(ALU64 | op as u8 | K, dst, 0, 0, imm));
    }

    pub(crate) fn alu64_reg(&mut self, op: Alu, dst: Reg, src: Reg) {
        self.insns
            .push(Insn::new(ALU64 | op as u8 | X, dst, src, 0, 0));
    }

    /// `dst = *(size *)(src + off)`
    pub(crate) fn load(&mut self, size: Size, dst: Reg, src: Reg, off: i16) {
        self.insns
            .push(Insn::new(LDX | MEM | size as u8, dst, src, off, 0));
    }

    /// `*(size *)(dst + off) = src`
    pub(crate) fn store(&mut self, size: Size, dst: Reg, src: Reg, off: i16) {
        self.insns
            .push(Insn::new(STX | MEM | size as u8, dst, src, off, 0));
    }

    /// `dst = map` (two-instruction `ld_imm64` with a map fd).
    pub(crate) fn load_map_fd(&mut self, dst: Reg, fd: i32) {
        self.insns.push(Insn::new(
            LD | IMM | Size::DW as u8,
            dst,
            PSEUDO_MAP_FD,
            0,
            fd,
        ));
        self.insns.push(Insn::new(0, 0, 0, 0, 0));
    }

    /// `if dst <op> imm goto target`
    pub(crate) fn jump_imm(&mut self, op: Jmp, dst: Reg, imm: i32, target: Label) {
        self.fixups.push((self.insns.len(), target));
        self.insns
            .push(Insn::new(JMP | op as u8 | K, dst, 0, 0, imm));
    }

    /// `if dst <op> src goto target`
    pub(crate) fn jump_reg(&mut self, op: Jmp, dst: Reg, src: Reg, target: Label) {
        self.fixups.push((self.insns.len(), target));
        self.insns
            .push(Insn::new(JMP | op as u8 | X, dst, src, 0, 0));
    }

    /// `goto target`
    pub(crate) fn jump(&mut self, target: Label) {
        self.fixups.push((self.insns.len(), target));
        self.insns.push(Insn::new(JMP | JA, 0, 0, 0, 0));
    }

    /// `r0 = helper(r1, ..., r5)`
    pub(crate) fn call(&mut self, helper: i32) {
        self.insns.push(Insn::new(JMP | CALL, 0, 0, 0, helper));
    }

    pub(crate) fn exit(&mut self) {
        self.insns.push(Insn::new(JMP | EXIT, 0, 0, 0, 0));
    }

    /// The instructions with every jump offset resolved.
    ///
    /// # Panics
    /// When a label used by a jump was never bound or is out of range
    /// (a bug in the program text, caught by the unit tests).
    pub(crate) fn finish(mut self) -> Vec<Insn> {
        for (at, label) in std::mem::take(&mut self.fixups) {
            let target = self.labels[label.0].expect("jump to an unbound label");
            let off = target as isize - (at as isize + 1);
            self.insns[at].off = i16::try_from(off).expect("jump out of range");
        }
        self.insns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_match_the_kernel_macros() {
        let mut a = Asm::default();
        let end = a.label();
        a.alu64_imm(Alu::Mov, R0, 2); // BPF_MOV64_IMM(R0, 2)
        a.alu64_reg(Alu::Mov, R6, R1); // BPF_MOV64_REG(R6, R1)
        a.load(Size::W, R2, R6, 4); // BPF_LDX_MEM(BPF_W, R2, R6, 4)
        a.store(Size::H, R10, R5, -2); // BPF_STX_MEM(BPF_H, R10, R5, -2)
        a.load_map_fd(R1, 7); // BPF_LD_MAP_FD(R1, 7)
        a.jump_imm(Jmp::Ne, R5, 17, end); // BPF_JMP_IMM(BPF_JNE, R5, 17, +1)
        a.call(51); // BPF_EMIT_CALL(51)
        a.bind(end);
        a.exit(); // BPF_EXIT_INSN()
        let bytes: Vec<[u8; 8]> = a.finish().into_iter().map(Insn::to_bytes).collect();
        assert_eq!(bytes[0], [0xb7, 0x00, 0, 0, 2, 0, 0, 0]);
        assert_eq!(bytes[1], [0xbf, 0x16, 0, 0, 0, 0, 0, 0]);
        assert_eq!(bytes[2], [0x61, 0x62, 4, 0, 0, 0, 0, 0]);
        assert_eq!(bytes[3], [0x6b, 0x5a, 0xfe, 0xff, 0, 0, 0, 0]);
        assert_eq!(bytes[4], [0x18, 0x11, 0, 0, 7, 0, 0, 0]);
        assert_eq!(bytes[5], [0; 8]);
        assert_eq!(bytes[6], [0x55, 0x05, 1, 0, 17, 0, 0, 0]);
        assert_eq!(bytes[7], [0x85, 0x00, 0, 0, 51, 0, 0, 0]);
        assert_eq!(bytes[8], [0x95, 0, 0, 0, 0, 0, 0, 0]);
    }
}
