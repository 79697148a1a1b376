using System.Text;
using Lora.Quantization;
using Lora.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Quantization;

/// <summary>
/// The 4-bit and 8-bit blockwise kernels against references: <c>nf4/nf4_reference.safetensors</c> (the team's NF4
/// fixture) and <c>quant/bnb_reference.safetensors</c> (bitsandbytes' default backend transcribed in
/// <c>tests/fixtures/generate/bnb_reference.py</c>): codes, scales, packing and dequantized values bit for bit.
/// </summary>
public class BlockwiseTests
{
    private static string Nf4Fixture => Path.Combine(Fixtures.Root, "nf4", "nf4_reference.safetensors");

    internal static string BnbFixture => Path.Combine(Fixtures.Root, "quant", "bnb_reference.safetensors");

    [Fact]
    public void Nf4_codes_absmax_and_dequantized_values_equal_the_reference_bit_for_bit()
    {
        using var scope = NewDisposeScope();
        using var file = SafeTensorsFile.Open(Nf4Fixture);
        var weight = file.Load("weight");
        Assert.Equal(CodeTables.Nf4.ToArray(), file.Load("nf4").data<float>().ToArray());

        using var q = FourBitWeight.Quantize(weight, QuantizationType.Nf4);
        Assert.Equal(new long[] { weight.numel() / 2, 1 }, q.Packed.shape);
        Assert.True(Bits.Equal(Unpack(q.Packed).view(file.Load("codes").shape), file.Load("codes")), "codes differ");
        Assert.True(Bits.Equal(q.Absmax, file.Load("absmax")), "absmax differs");
        Assert.True(Bits.Equal(q.Dequantize(), file.Load("dequant")), "dequantized values differ");
    }

    [Theory]
    [InlineData("fp4_odd", QuantizationType.Fp4, 64, false)]
    [InlineData("nf4_dq", QuantizationType.Nf4, 64, true)]
    [InlineData("fp4_dq_bs32", QuantizationType.Fp4, 32, true)]
    [InlineData("nf4_bs4096", QuantizationType.Nf4, 4096, false)]
    public void Four_bit_state_equals_bitsandbytes_bit_for_bit(string @case, QuantizationType type, int blocksize, bool doubleQuant)
    {
        using var scope = NewDisposeScope();
        using var file = SafeTensorsFile.Open(BnbFixture);
        var input = file.Load($"{@case}.input");
        using var q = FourBitWeight.Quantize(input, type, blocksize, doubleQuant);

        var ours = q.StateEntries($"{@case}.weight").ToDictionary(e => e.Name, e => e.Value);
        var expectedKeys = file.Tensors.Keys.Where(k => k.StartsWith($"{@case}.weight", StringComparison.Ordinal)).Order(StringComparer.Ordinal);
        Assert.Equal(expectedKeys, ours.Keys.Order(StringComparer.Ordinal));
        foreach (var (key, value) in ours)
        {
            var expected = file.Load(key);
            Assert.Equal(expected.dtype, value.dtype);
            Assert.True(Bits.Equal(value.cpu(), expected), $"{key} differs");
        }

        // The JSON blob byte for byte (Python json.dumps, float repr of the offset).
        Assert.Equal(Encoding.UTF8.GetString(file.Load($"{@case}.weight.quant_state.bitsandbytes__{type.Name()}").data<byte>().ToArray()), q.QuantStateJson());
        if (doubleQuant)
            Assert.True(Bits.Equal(q.BlockScales(), file.Load($"{@case}.absmax_restored")), "restored absmax differs");
        var dequant = q.Dequantize();
        Assert.Equal(input.dtype, dequant.dtype);
        Assert.True(Bits.Equal(dequant, file.Load($"{@case}.dequant")), "dequantized values differ");
    }

    [Fact]
    public void Code_tables_equal_bitsandbytes()
    {
        using var scope = NewDisposeScope();
        using var file = SafeTensorsFile.Open(BnbFixture);
        Assert.Equal(file.Load("fp4_code").data<float>().ToArray(), CodeTables.Fp4.ToArray());
        Assert.Equal(file.Load("dynamic_map").data<float>().ToArray(), CodeTables.Dynamic.ToArray());
        // torch.linspace's last bits depend on the CPU kernel's vector width: the table is reproduced for both.
        using var avx512 = SafeTensorsFile.Open(Path.Combine(Fixtures.Root, "quant", "dynamic_map_avx512.safetensors"));
        using var avx2 = SafeTensorsFile.Open(Path.Combine(Fixtures.Root, "quant", "dynamic_map_avx2.safetensors"));
        Assert.Equal(avx512.Load("dynamic_map").data<float>().ToArray(), CodeTables.CreateDynamicMap(CodeTables.Avx512Lanes));
        Assert.Equal(avx2.Load("dynamic_map").data<float>().ToArray(), CodeTables.CreateDynamicMap(CodeTables.Avx2Lanes));
        Assert.Equal(256, CodeTables.Dynamic.Count);
        Assert.Equal(-0.99296874f, CodeTables.Dynamic[0]); // signed: no −1, but 0 and 1
        Assert.Equal(1f, CodeTables.Dynamic[^1]);
    }

    [Fact]
    public void Packing_puts_the_first_element_in_the_high_nibble()
    {
        using var scope = NewDisposeScope();
        // Absmax 1: the values are their own codes' NF4 levels: indices 15, 0, 7, 8, 3 (odd count: the pad takes code 7, the zero).
        var w = tensor(new[] { 1f, -1f, 0f, CodeTables.Nf4[8], CodeTables.Nf4[3] });
        var (packed, absmax) = Blockwise.Quantize4Bit(w, QuantizationType.Nf4, 64);
        Assert.Equal(new long[] { 3, 1 }, packed.shape);
        Assert.Equal(new byte[] { 0xF0, 0x78, 0x37 }, packed.data<byte>().ToArray());
        Assert.Equal(1f, absmax.item<float>());
    }

    [Fact]
    public void Values_on_a_midpoint_take_the_lower_code_and_a_zero_block_dequantizes_to_zero()
    {
        using var scope = NewDisposeScope();
        var mid = (CodeTables.Nf4[10] + CodeTables.Nf4[11]) / 2f;
        var w = cat([tensor(new[] { 1f, mid, -mid }), zeros(61), zeros(64)]);
        using var q = FourBitWeight.Quantize(w.view(2, 64), QuantizationType.Nf4);
        var codes = Unpack(q.Packed).data<byte>().ToArray();
        Assert.Equal(10, codes[1]);
        Assert.Equal(4, codes[2]); // −mid lies between codes 4 and 5: the lower one
        Assert.Equal(0f, q.Absmax[1].item<float>());
        Assert.True(q.Dequantize()[1].eq(0).all().item<bool>());
    }

    [Fact]
    public void Double_quantization_round_trip_error_is_bounded_by_half_a_dynamic_map_step()
    {
        using var scope = NewDisposeScope();
        var gen = new Generator(7);
        var w = randn([512, 1024], generator: gen) * 0.02;
        using var plain = FourBitWeight.Quantize(w, QuantizationType.Nf4, 64, doubleQuant: false);
        using var nested = FourBitWeight.Quantize(w, QuantizationType.Nf4, 64, doubleQuant: true);
        var exact = plain.Absmax;
        var restored = nested.BlockScales();
        // Each absmax − offset is coded to the nearest of 256 levels in [−1, 1] of its 256-block's scale: the error is at
        // most half the widest gap of the dynamic map times that scale.
        var map = tensor(CodeTables.Dynamic.ToArray());
        var widestGap = (map.narrow(0, 1, 255) - map.narrow(0, 0, 255)).max().item<float>();
        var err = (restored - exact).abs();
        var scales = nested.NestedAbsmax!.repeat_interleave(256).narrow(0, 0, exact.numel());
        Assert.True((err <= scales * (widestGap / 2) + 1e-7f).all().item<bool>(), $"max error {err.max().item<float>():G4}");
        // And the weights stay as close as without double quantization (relative Frobenius error within 1% of it).
        var e1 = ((plain.Dequantize() - w).norm() / w.norm()).item<float>();
        var e2 = ((nested.Dequantize() - w).norm() / w.norm()).item<float>();
        Assert.InRange(e2, e1 * 0.99, e1 * 1.01);
        Assert.InRange(e1, 0.05, 0.15); // NF4 on Gaussian weights: ~10% relative error
    }

    [Fact]
    public void Bits_per_parameter_from_the_stored_tensors_are_4_5_without_and_at_most_4_13_with_double_quant()
    {
        using var scope = NewDisposeScope();
        var w = randn([4096, 1024], generator: new Generator(3)) * 0.02;
        using var plain = FourBitWeight.Quantize(w, QuantizationType.Nf4, 64, doubleQuant: false);
        using var nested = FourBitWeight.Quantize(w, QuantizationType.Nf4, 64, doubleQuant: true);
        // 4 + 32/64 bits, plus the 16-entry table.
        Assert.Equal(4.5 + 16 * 32.0 / w.numel(), plain.BitsPerParameter, 9);
        // 4 + 8/64 + 32/(64·256), plus the two tables.
        Assert.Equal(4 + 8.0 / 64 + 32.0 / (64 * 256) + (16 + 256) * 32.0 / w.numel(), nested.BitsPerParameter, 9);
        Assert.True(nested.BitsPerParameter <= 4.13, $"{nested.BitsPerParameter}");
    }

    [Fact]
    public void Invalid_blocksizes_are_refused_by_name()
    {
        using var scope = NewDisposeScope();
        var e = Assert.Throws<LoraException>(() => FourBitWeight.Quantize(ones(64, 64), QuantizationType.Nf4, 48));
        Assert.Contains("blocksize 48", e.Message);
    }

    /// <summary>The 4-bit codes of a packed tensor, in element order (high nibble first).</summary>
    internal static Tensor Unpack(Tensor packed)
    {
        var bytes = packed.reshape(-1).to(ScalarType.Int32);
        return stack([bytes.floor_divide(16), bytes.remainder(16)], 1).view(-1).to(ScalarType.Byte);
    }
}

/// <summary>Bit-for-bit tensor comparison (shape, dtype and bytes; −0 differs from +0).</summary>
internal static class Bits
{
    public static bool Equal(Tensor actual, Tensor expected)
    {
        if (actual.dtype != expected.dtype || !actual.shape.SequenceEqual(expected.shape))
            return false;
        using var a = actual.cpu().contiguous();
        using var b = expected.cpu().contiguous();
        return a.bytes.SequenceEqual(b.bytes);
    }
}
