# unitfp8 from Julia through its C ABI (include/unitfp8.h), with `@ccall`.
#
# NOT RUN BY THE TEST SUITE: no Julia can be installed on the machines this project is built
# on, so this script has never been executed. It was written against the header and the
# Julia manual (ccall / @ccall, Julia >= 1.6); please report anything that does not work.
#
# Usage: cargo build --release
#        julia ffi-tests/julia/example.jl            (or set UNITFP8_LIB to the library path)
#
# Conventions: FP8 arrays are Vector{UInt8} / Matrix{UInt8} (Julia has no FP8 type), bf16
# arrays Vector{UInt16}, f16 arrays Vector{Float16}. Julia matrices are column-major: a
# column-major M x N matrix with leading dimension ld (= stride(A, 2)) is, for unitfp8, the
# row-major N x M matrix with the same leading dimension, so pass rows = N, cols = M.

const LIB = get(ENV, "UNITFP8_LIB",
                joinpath(@__DIR__, "..", "..", "target", "release",
                         Sys.isapple() ? "libunitfp8.dylib" : "libunitfp8.so"))

# Status codes, element types and rounding modes (as in include/unitfp8.h).
const UNITFP8_OK = Int32(0)
const UNITFP8_ERROR_INVALID_ARGUMENT = Int32(2)
const UNITFP8_F32 = UInt32(0)
const UNITFP8_BF16 = UInt32(1)
const UNITFP8_F16 = UInt32(2)
const UNITFP8_E4M3 = UInt32(3)
const UNITFP8_E5M2 = UInt32(4)
const UNITFP8_ROUND_NEAREST_SATURATE = UInt32(0)
const UNITFP8_ROUND_NEAREST = UInt32(1)
const UNITFP8_ROUND_STOCHASTIC_SATURATE = UInt32(2)

dtype_code(::Type{Float32}) = UNITFP8_F32
dtype_code(::Type{Float16}) = UNITFP8_F16

status_string(st::Integer) = unsafe_string(@ccall LIB.unitfp8_status_string(st::Int32)::Cstring)

function check(st::Int32)
    st == UNITFP8_OK || error("unitfp8: status $st ($(status_string(st)))")
    return nothing
end

# ---------------------------------------------------------------- information

version() = unsafe_string(@ccall LIB.unitfp8_version()::Cstring)
backend() = unsafe_string(@ccall LIB.unitfp8_backend()::Cstring)
set_num_threads(n::Integer) = @ccall LIB.unitfp8_set_num_threads(n::Csize_t)::Cvoid
get_num_threads() = Int(@ccall LIB.unitfp8_get_num_threads()::Csize_t)

# ---------------------------------------------------------------- casts

"""
    cast_to_fp8(x::Vector{Float32}; fp8 = UNITFP8_E4M3, scale = 1, rounding, seed = 0)

Returns `(codes::Vector{UInt8}, amax::Float32)`: each `x[i] * scale` rounded to FP8 (E4M3 or
E5M2), and `maximum(abs, x)` before scaling.
"""
function cast_to_fp8(x::Vector{Float32}; fp8::UInt32 = UNITFP8_E4M3, scale::Real = 1.0f0,
                     rounding::UInt32 = UNITFP8_ROUND_NEAREST_SATURATE, seed::Integer = 0)
    dst = Vector{UInt8}(undef, length(x))
    amax = Ref{Cfloat}(0)
    # Arrays passed as Ptr{Cvoid} are converted (and kept alive) by ccall itself.
    st = @ccall LIB.unitfp8_cast(x::Ptr{Cvoid}, UNITFP8_F32::UInt32, dst::Ptr{Cvoid},
                                 fp8::UInt32, length(x)::Csize_t, Float32(scale)::Cfloat,
                                 rounding::UInt32, UInt64(seed)::UInt64,
                                 amax::Ptr{Cfloat})::Int32
    check(st)
    return dst, amax[]
end

"""
    decode_fp8(codes::Vector{UInt8}; fp8 = UNITFP8_E4M3) -> Vector{Float32}

Exact widening (round-to-nearest mode, so E5M2 infinities stay infinite; no amax).
"""
function decode_fp8(codes::Vector{UInt8}; fp8::UInt32 = UNITFP8_E4M3)
    out = Vector{Float32}(undef, length(codes))
    st = @ccall LIB.unitfp8_cast(codes::Ptr{Cvoid}, fp8::UInt32, out::Ptr{Cvoid},
                                 UNITFP8_F32::UInt32, length(codes)::Csize_t, 1.0f0::Cfloat,
                                 UNITFP8_ROUND_NEAREST::UInt32, 0::UInt64,
                                 C_NULL::Ptr{Cfloat})::Int32
    check(st)
    return out
end

"""
    cast_transpose_fp8(A::Matrix{Float32}; fp8, rounding, seed) -> (Q, Qt, amax)

`Q = fp8(A)` (M x N) and `Qt = fp8(A)'` (N x M), both column-major `Matrix{UInt8}`, in one
pass. Column-major M x N with leading dimension M is row-major N x M for the library.
"""
function cast_transpose_fp8(A::Matrix{Float32}; fp8::UInt32 = UNITFP8_E4M3,
                            rounding::UInt32 = UNITFP8_ROUND_NEAREST_SATURATE,
                            seed::Integer = 0)
    M, N = size(A)
    Q = Matrix{UInt8}(undef, M, N)
    Qt = Matrix{UInt8}(undef, N, M)
    amax = Ref{Cfloat}(0)
    st = @ccall LIB.unitfp8_cast_transpose(A::Ptr{Cvoid}, UNITFP8_F32::UInt32,
                                           N::Csize_t, M::Csize_t, stride(A, 2)::Csize_t,
                                           Q::Ptr{Cvoid}, stride(Q, 2)::Csize_t,
                                           Qt::Ptr{Cvoid}, stride(Qt, 2)::Csize_t,
                                           fp8::UInt32, 1.0f0::Cfloat, rounding::UInt32,
                                           UInt64(seed)::UInt64, amax::Ptr{Cfloat})::Int32
    check(st)
    return Q, Qt, amax[]
end

"""
The same for the top-left `M x N` block of a larger column-major buffer `P` (leading
dimension `size(P, 1)`), showing an explicit leading dimension; `pointer` needs
`GC.@preserve`.
"""
function cast_block_fp8(P::Matrix{Float32}, M::Integer, N::Integer)
    @assert M <= size(P, 1) && N <= size(P, 2)
    Q = Matrix{UInt8}(undef, M, N)
    st = GC.@preserve P Q begin
        @ccall LIB.unitfp8_cast_transpose(pointer(P)::Ptr{Cvoid}, UNITFP8_F32::UInt32,
                                          N::Csize_t, M::Csize_t, size(P, 1)::Csize_t,
                                          pointer(Q)::Ptr{Cvoid}, M::Csize_t,
                                          C_NULL::Ptr{Cvoid}, 0::Csize_t,
                                          UNITFP8_E4M3::UInt32, 1.0f0::Cfloat,
                                          UNITFP8_ROUND_NEAREST_SATURATE::UInt32, 0::UInt64,
                                          C_NULL::Ptr{Cfloat})::Int32
    end
    check(st)
    return Q
end

# ---------------------------------------------------------------- residual mix

"""
    residual_mix!(x, f, tau; fp8 = nothing) -> x

In place: `x .= sqrt(1-τ) .* x .+ sqrt(τ) .* f` (f32 arithmetic, each product rounded, no
FMA), and, when `fp8` is a `Vector{UInt8}`, its E4M3 copy.
"""
function residual_mix!(x::Vector{T}, f::Vector{T}, tau::Real;
                       fp8::Union{Nothing,Vector{UInt8}} = nothing) where {T<:Union{Float32,Float16}}
    n = length(x)
    @assert length(f) == n && (fp8 === nothing || length(fp8) == n)
    q = fp8 === nothing ? C_NULL : pointer(fp8)
    st = GC.@preserve fp8 begin
        @ccall LIB.unitfp8_residual_mix(x::Ptr{Cvoid}, f::Ptr{Cvoid}, x::Ptr{Cvoid},
                                        dtype_code(T)::UInt32, n::Csize_t, Float32(tau)::Cfloat,
                                        q::Ptr{Cvoid}, UNITFP8_E4M3::UInt32,
                                        UNITFP8_ROUND_NEAREST_SATURATE::UInt32,
                                        0::UInt64)::Int32
    end
    check(st)
    return x
end

"""
    residual_mix_backward!(grad_x, grad_f, grad_out, tau; accumulate = true, fp8 = nothing)

`grad_x .+= sqrt(1-τ) .* grad_out` (or `=` without `accumulate`), `grad_f .= sqrt(τ) .* grad_out`,
and, when `fp8` is given, the E5M2 copy of `grad_f`.
"""
function residual_mix_backward!(grad_x::Vector{T}, grad_f::Vector{T}, grad_out::Vector{T},
                                tau::Real; accumulate::Bool = true,
                                fp8::Union{Nothing,Vector{UInt8}} = nothing) where {T<:Union{Float32,Float16}}
    n = length(grad_out)
    @assert length(grad_x) == n && length(grad_f) == n
    q = fp8 === nothing ? C_NULL : pointer(fp8)
    st = GC.@preserve fp8 begin
        @ccall LIB.unitfp8_residual_mix_backward(grad_out::Ptr{Cvoid}, grad_x::Ptr{Cvoid},
                                                 grad_f::Ptr{Cvoid}, dtype_code(T)::UInt32,
                                                 n::Csize_t, Float32(tau)::Cfloat,
                                                 Int32(accumulate)::Int32, q::Ptr{Cvoid},
                                                 UNITFP8_E5M2::UInt32,
                                                 UNITFP8_ROUND_NEAREST_SATURATE::UInt32,
                                                 0::UInt64)::Int32
    end
    check(st)
    return grad_x, grad_f
end

# ---------------------------------------------------------------- demo with checks

function main()
    println("unitfp8 ", version(), ", back end ", backend(), ", ", get_num_threads(), " threads")

    # Clip-cast to E4M3: 1 -> 0x38, 448 (max) -> 0x7e, 1000 saturates to 0x7e, -0 -> 0x80,
    # 1.0625 is a tie between 1 and 1.125 and rounds to even (0x38).
    x = Float32[1.0, 448.0, 1000.0, -0.0, 1.0625]
    q, amax = cast_to_fp8(x)
    @assert q == UInt8[0x38, 0x7e, 0x7e, 0x80, 0x38] q
    @assert amax == 1000.0f0
    @assert decode_fp8(q) == Float32[1.0, 448.0, 448.0, -0.0, 1.0]

    # Non-saturating rounding: 465 overflows E4M3 to NaN (0x7f), E5M2 61440 to Inf (0x7c).
    q, _ = cast_to_fp8(Float32[465.0]; rounding = UNITFP8_ROUND_NEAREST)
    @assert q == UInt8[0x7f]
    q, _ = cast_to_fp8(Float32[61440.0]; fp8 = UNITFP8_E5M2, rounding = UNITFP8_ROUND_NEAREST)
    @assert q == UInt8[0x7c]

    # Stochastic rounding is reproducible for a given seed.
    r = randn(Float32, 10_000)
    a1, _ = cast_to_fp8(r; rounding = UNITFP8_ROUND_STOCHASTIC_SATURATE, seed = 42)
    a2, _ = cast_to_fp8(r; rounding = UNITFP8_ROUND_STOCHASTIC_SATURATE, seed = 42)
    @assert a1 == a2

    # Cast-transpose of a column-major matrix: Q is fp8(A), Qt its transpose.
    A = randn(Float32, 37, 21)
    Q, Qt, amax = cast_transpose_fp8(A)
    @assert Q == reshape(cast_to_fp8(vec(A))[1], size(A))
    @assert Qt == permutedims(Q)
    @assert amax == maximum(abs, A)
    P = randn(Float32, 40, 30)
    @assert cast_block_fp8(P, 37, 21) == reshape(cast_to_fp8(vec(P[1:37, 1:21]))[1], 37, 21)

    # Residual mix against Julia's own f32 arithmetic (products rounded, then the sum).
    tau = 0.1f0
    a, b = sqrt(1.0f0 - tau), sqrt(tau)
    xs, fs = randn(Float32, 1001), randn(Float32, 1001)
    expected = [(a * xi) + (b * fi) for (xi, fi) in zip(xs, fs)]  # two roundings, then the sum
    q8 = Vector{UInt8}(undef, 1001)
    y = residual_mix!(copy(xs), fs, tau; fp8 = q8)
    @assert reinterpret(UInt32, y) == reinterpret(UInt32, expected)
    @assert q8 == cast_to_fp8(y)[1]

    g = randn(Float32, 1001)
    gx, gf = copy(xs), similar(xs)
    residual_mix_backward!(gx, gf, g, tau; accumulate = true)
    @assert gx == [xi + (a * gi) for (xi, gi) in zip(xs, g)]
    @assert gf == b .* g

    # Errors come back as status codes (here a NaN τ), never as exceptions or aborts.
    st = @ccall LIB.unitfp8_residual_mix(xs::Ptr{Cvoid}, fs::Ptr{Cvoid}, xs::Ptr{Cvoid},
                                         UNITFP8_F32::UInt32, length(xs)::Csize_t, NaN32::Cfloat,
                                         C_NULL::Ptr{Cvoid}, UNITFP8_E4M3::UInt32,
                                         UNITFP8_ROUND_NEAREST_SATURATE::UInt32,
                                         0::UInt64)::Int32
    @assert st == UNITFP8_ERROR_INVALID_ARGUMENT
    println("error path: ", status_string(st))

    set_num_threads(1)
    @assert get_num_threads() == 1
    set_num_threads(0)  # back to the default
    println("all checks passed")
end

main()
