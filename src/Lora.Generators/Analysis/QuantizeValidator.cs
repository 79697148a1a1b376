using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using Lora.Generators.Diagnostics;

namespace Lora.Generators.Analysis;

/// <summary>
/// The build-time rules of <c>[Quantize]</c>, the same as the runtime's <c>QuantizationConfig.Validate()</c> (so a
/// model that builds does not throw on load for its declared quantization): an adapter plan on the class (LORA0015),
/// a bitsandbytes 4-bit block size (LORA0016), no double quantization of int8 weights (LORA0017), a model compute
/// dtype (LORA0018), a non-negative int8 outlier threshold (LORA0019); and the warning LORA0020 for a setting the
/// declared type ignores (the 4-bit ones with <c>Int8</c>, <c>Int8Threshold</c> with a 4-bit type).
/// </summary>
internal static class QuantizeValidator
{
    /// <summary>bitsandbytes' 4-bit block sizes (<c>Blockwise.FourBitBlocksizes</c> in the runtime).</summary>
    public static readonly int[] FourBitBlocksizes = { 32, 64, 128, 256, 512, 1024, 2048, 4096 };

    /// <summary>The dtypes a model computes in (<c>CausalLM.SupportedDTypes</c> in the runtime).</summary>
    public static readonly string[] ComputeDTypes = { "Float32", "BFloat16", "Float16" };

    public static void Check(QuantizeArguments q, string display, bool hasPlan, List<LoraDiagnostic> diagnostics)
    {
        if (!hasPlan)
            diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.QuantizeWithoutPlan, q.AttributeLocation, new object[] { display }));

        var type = q.TypeName;
        if (q.IsFourBit || type is null)
        {
            // An unknown type (it does not bind: the compiler says why) is checked as 4-bit, the attribute's common case.
            var blocksize = q.Int("Blocksize", 64);
            if (!FourBitBlocksizes.Contains(blocksize))
                diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.InvalidQuantizeBlocksize, q.LocationOf("Blocksize"),
                    new object[] { display, blocksize.ToString(CultureInfo.InvariantCulture), string.Join(", ", FourBitBlocksizes) }));
        }

        if (q.IsInt8 && q.Bool("DoubleQuant", false))
            diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.InvalidQuantizeDoubleQuant, q.LocationOf("DoubleQuant"), new object[] { display }));

        var compute = q.Enum("Compute");
        var computeValid = compute is null || ComputeDTypes.Contains(compute);
        if (!computeValid)
            diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.InvalidQuantizeCompute, q.LocationOf("Compute"), new object[] { display, q.Written("Compute") }));

        var threshold = q.Double("Int8Threshold", 6.0);
        var thresholdValid = threshold >= 0;
        if (!thresholdValid)
            diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.InvalidQuantizeThreshold, q.LocationOf("Int8Threshold"),
                new object[] { display, threshold.ToString("R", CultureInfo.InvariantCulture) }));

        // Settings the declared type ignores: a warning, on the argument (an invalid value is already an error).
        if (q.IsInt8)
        {
            if (q.Has("Blocksize"))
                Ignored(q, display, "Blocksize", "int8 weights have one scale per row, not per block", diagnostics);
            if (q.Has("Compute") && computeValid)
                Ignored(q, display, "Compute", "int8 layers multiply in the model's dtype", diagnostics);
            if (q.Has("DoubleQuant") && !q.Bool("DoubleQuant", false))
                Ignored(q, display, "DoubleQuant", "double quantization applies to 4-bit block scales", diagnostics);
        }
        else if (q.IsFourBit && q.Has("Int8Threshold") && thresholdValid)
        {
            Ignored(q, display, "Int8Threshold", "the outlier threshold applies to LLM.int8() layers only", diagnostics);
        }
    }

    private static void Ignored(QuantizeArguments q, string display, string argument, string why, List<LoraDiagnostic> diagnostics) =>
        diagnostics.Add(new LoraDiagnostic(DiagnosticDescriptors.QuantizeSettingIgnored, q.LocationOf(argument),
            new object[] { display, q.Written(argument), "QuantizationType." + q.TypeName, why }));
}
