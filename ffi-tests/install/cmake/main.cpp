// C++17 through CMake's find_package(unitfp8): a μS linear forward in FP8 against a direct sum.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include <unitfp8.h>

int main() {
    const std::size_t batch = 3, fan_in = 40, fan_out = 5;
    std::vector<float> x(batch * fan_in), w(fan_out * fan_in);
    for (std::size_t i = 0; i < x.size(); i++) x[i] = static_cast<float>(i % 7) - 3.0f;
    for (std::size_t i = 0; i < w.size(); i++) w[i] = static_cast<float>(i % 5) * 0.5f - 1.0f;
    std::vector<std::uint8_t> x8(x.size()), w8(w.size());
    // These values are exact in E4M3, so the FP8 result equals the f32 one.
    if (unitfp8_cast(x.data(), UNITFP8_F32, x8.data(), UNITFP8_E4M3, x.size(), 1.0f,
                     UNITFP8_ROUND_NEAREST_SATURATE, 0, nullptr) != UNITFP8_OK ||
        unitfp8_cast(w.data(), UNITFP8_F32, w8.data(), UNITFP8_E4M3, w.size(), 1.0f,
                     UNITFP8_ROUND_NEAREST_SATURATE, 0, nullptr) != UNITFP8_OK) {
        std::fprintf(stderr, "cast failed\n");
        return 1;
    }
    std::vector<float> y(batch * fan_out, NAN);
    std::int32_t s = unitfp8_linear_forward(batch, fan_in, fan_out, 0.5f, x8.data(), w8.data(),
                                            y.data(), UNITFP8_F32);
    if (s != UNITFP8_OK) {
        std::fprintf(stderr, "unitfp8_linear_forward: %s\n", unitfp8_status_string(s));
        return 1;
    }
    for (std::size_t b = 0; b < batch; b++)
        for (std::size_t o = 0; o < fan_out; o++) {
            float want = 0;
            for (std::size_t i = 0; i < fan_in; i++) want += x[b * fan_in + i] * w[o * fan_in + i];
            want *= 0.5f;
            if (y[b * fan_out + o] != want) {
                std::fprintf(stderr, "y[%zu,%zu] = %g, want %g\n", b, o, y[b * fan_out + o], want);
                return 1;
            }
        }
    // An error path: a bad output type is reported, y untouched.
    if (unitfp8_linear_forward(batch, fan_in, fan_out, 0.5f, x8.data(), w8.data(), y.data(), 99) !=
        UNITFP8_ERROR_INVALID_ARGUMENT) {
        std::fprintf(stderr, "bad y_type not reported\n");
        return 1;
    }
    std::printf("C++17 via find_package(unitfp8 %s): linear forward ok\n", unitfp8_version());
    return 0;
}
