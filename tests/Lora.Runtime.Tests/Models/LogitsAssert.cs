using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Models;

internal static class LogitsAssert
{
    /// <summary>
    /// <c>max|a - b| ≤ rtol · max|b| + atol</c>. Relative to the largest logit rather than elementwise: logits of one
    /// position share one scale, and an elementwise rtol would demand 1e-4 relative precision of logits that are
    /// themselves ~0 (pure rounding noise). The fixtures' reference stack agrees with itself to about 1e-5 relative
    /// in fp32 (tests/fixtures/README.md), so rtol 1e-4 leaves a 10× margin for TorchSharp's different kernels
    /// while still catching any real difference (a wrong mask, rope or bias shows up at 1e-2 or more).
    /// </summary>
    public static void Close(Tensor actual, Tensor expected, double rtol = 1e-4, double atol = 1e-5, string what = "logits")
    {
        Assert.Equal(expected.shape, actual.shape);
        using var scope = NewDisposeScope();
        var a = actual.to(ScalarType.Float32, CPU);
        var b = expected.to(ScalarType.Float32, CPU);
        var maxDiff = (a - b).abs().max().item<float>();
        var scale = b.abs().max().item<float>();
        var bound = rtol * scale + atol;
        Assert.False(float.IsNaN(maxDiff), $"{what}: NaN in the output");
        Assert.True(maxDiff <= bound, $"{what}: max |a - b| = {maxDiff:G6} > {bound:G6} (rtol {rtol} × max|b| {scale:G6} + atol {atol})");
    }
}
