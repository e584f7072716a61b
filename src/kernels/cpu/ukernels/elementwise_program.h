// Elementwise programs over blocks of float32: a list of instructions, each one op over whole
// blocks of registers, so a chain of elementwise ops reads its inputs once and keeps its
// intermediates in L1. com.strata:FusedElementwise (fused_elementwise.cc) compiles its attributes
// into a program and feeds it blocks of its broadcast inputs.
//
// Every op computes what its unfused float32 kernel computes: the same comparisons (NaN, -0), the
// vec_math kernels for Exp/Tanh/Sigmoid/Erf/Gelu, libm for Log and Pow. The simple ops are loops
// the compiler vectorises, compiled per ISA level (elementwise_program.inc).
#pragma once

#include <cstdint>
#include <span>

#include "core/dtype.h"
#include "kernels/cpu/ukernels/vec_math.h"

namespace strata::cpu::uk {

enum class ElementwiseOp : uint8_t {
  // simple: plain loops (elementwise_program.inc)
  kAdd, kSub, kMul, kDiv, kMax, kMin, kSquare, kRelu, kLeakyRelu, kClip, kHardSigmoid, kSqrt, kNeg, kAbs,
  kReciprocal, kNot, kWhere,
  // vec_math
  kExp, kTanh, kSigmoid, kErf, kGelu, kGeluTanh,
  // libm
  kLog, kPow, kPowDouble,
};

// d = op(src...) over a block. alpha and beta: LeakyRelu's alpha, Clip's bounds, HardSigmoid's
// alpha and beta, Pow's exponent.
struct ElementwiseInstr {
  ElementwiseOp op;
  int arity;
  // Operands: >= 0 a register, < 0 input -(k + 1).
  int src[3] = {0, 0, 0};
  int dst = -1;  // register; -1 for the program's output
  float alpha = 0, beta = 0;
};

// The block operations of one ISA level.
struct ElementwiseKernels {
  const vec::Kernels* math;
  // d = op(a, b, c) over n elements for the simple ops (kAdd .. kWhere); d may alias any operand.
  void (*simple)(ElementwiseOp op, const float* a, const float* b, const float* c, float* d, int64_t n, float alpha,
                float beta);
  // d[0, n) = float(src[i * step]) for step 0 (a fill) or 1, from float32, int32, int64 or bool (0/1).
  void (*convert)(DType dt, const void* src, int64_t step, float* d, int64_t n);
};

// The operations of `isa`, which this CPU must support (vec::KernelsFor(isa) != nullptr).
const ElementwiseKernels& ElementwiseKernelsFor(vec::Isa isa);

// Runs `program` over one block of n elements: register r is regs + r * reg_stride, input k is
// inputs[k], and the last instruction writes `out`.
void RunElementwiseProgram(const ElementwiseKernels& kernels, std::span<const ElementwiseInstr> program, float* regs,
                           int64_t reg_stride, const float* const* inputs, float* out, int64_t n);

}  // namespace strata::cpu::uk
