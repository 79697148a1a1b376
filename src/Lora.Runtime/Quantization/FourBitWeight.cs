using Lora.Backend;
using System.Globalization;
using System.Text;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Quantization;

/// <summary>
/// A 4-bit weight and its quantization state, as bitsandbytes' <c>Params4bit</c> + <c>QuantState</c> hold it: the
/// packed codes, the code table, the block scales (fp32, or with double quantization 8-bit codes of
/// <c>absmax − offset</c> in blocks of 256 with their own fp32 scales and the dynamic map), the block size, the
/// original shape <c>(out, in)</c> and dtype. <see cref="StateEntries"/> gives the checkpoint tensors under
/// bitsandbytes' names (<c>Linear4bit._save_to_state_dict</c>, <c>QuantState.as_dict(packed=True)</c>), so
/// <c>*-bnb-4bit</c> checkpoints load without re-quantizing and ours load in transformers.
/// </summary>
public sealed class FourBitWeight : IDisposable
{
    /// <summary>The key suffixes under the layer's <c>weight</c> key.</summary>
    public const string AbsmaxName = "absmax", QuantMapName = "quant_map", NestedAbsmaxName = "nested_absmax",
        NestedQuantMapName = "nested_quant_map", QuantStatePrefix = "quant_state.bitsandbytes__";

    private FourBitWeight(QuantizationType type, int blocksize, long[] shape, ScalarType dtype, Tensor packed, Tensor code,
        Tensor absmax, Tensor? nestedAbsmax, Tensor? nestedCode, float offset)
    {
        Type = type;
        Blocksize = blocksize;
        Shape = shape;
        DType = dtype;
        Packed = packed;
        Code = code;
        Absmax = absmax;
        NestedAbsmax = nestedAbsmax;
        NestedCode = nestedCode;
        Offset = offset;
    }

    public QuantizationType Type { get; }

    public int Blocksize { get; }

    /// <summary>The weight's shape, <c>(out, in)</c>.</summary>
    public long[] Shape { get; }

    /// <summary>The dtype the weight had (and dequantizes to): <c>quant_state.dtype</c>.</summary>
    public ScalarType DType { get; }

    /// <summary>Packed codes, <c>[ceil(n/2), 1]</c> uint8.</summary>
    public Tensor Packed { get; private set; }

    /// <summary>The 16-entry code table (<c>quant_map</c>), fp32.</summary>
    public Tensor Code { get; private set; }

    /// <summary>Block scales: fp32 <c>[blocks]</c>, or uint8 codes when <see cref="DoubleQuant"/>.</summary>
    public Tensor Absmax { get; private set; }

    /// <summary>Double quantization: the fp32 scales of the 8-bit absmax codes, one per 256 blocks.</summary>
    public Tensor? NestedAbsmax { get; private set; }

    /// <summary>Double quantization: the 256-entry dynamic map (<c>nested_quant_map</c>).</summary>
    public Tensor? NestedCode { get; private set; }

    /// <summary>Double quantization: the mean of the absmax, subtracted before quantizing them (<c>nested_offset</c>).</summary>
    public float Offset { get; private set; }

    public bool DoubleQuant => NestedAbsmax is not null;

    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);

    /// <summary>Quantizes <paramref name="weight"/> <c>(out, in)</c> (bitsandbytes' <c>quantize_4bit</c>, with
    /// <c>compress_statistics</c> = <paramref name="doubleQuant"/>); the result lives on the weight's device.</summary>
    public static FourBitWeight Quantize(Tensor weight, QuantizationType type, int blocksize = 64, bool doubleQuant = false)
    {
        if (!type.IsFourBit())
            throw new ArgumentException($"{type} is not a 4-bit type.", nameof(type));
        using var scope = NewDisposeScope();
        var (packed, absmax) = Blockwise.Quantize4Bit(weight, type, blocksize);
        var code = tensor(CodeTables.FourBit(type).ToArray(), device: weight.device);
        Tensor? nestedAbsmax = null, nestedCode = null;
        var offset = 0f;
        if (doubleQuant)
        {
            // quantize_4bit(compress_statistics=True): offset = absmax.mean(); quantize_blockwise(absmax - offset, blocksize=256).
            var mean = absmax.mean();
            offset = mean.cpu().item<float>();
            nestedCode = tensor(CodeTables.Dynamic.ToArray(), device: weight.device);
            (absmax, nestedAbsmax) = Blockwise.Quantize8Bit(absmax - mean, nestedCode, Blockwise.NestedBlocksize);
        }

        var result = new FourBitWeight(type, blocksize, weight.shape, weight.dtype, packed, code, absmax, nestedAbsmax, nestedCode, offset);
        result.DetachAll();
        return result;
    }

    /// <summary>The fp32 block scales (double quantization undone: <c>dequantize_blockwise(absmax) + offset</c>).</summary>
    public Tensor BlockScales()
    {
        if (NestedAbsmax is null)
            return Absmax.alias();
        using var scope = NewDisposeScope();
        var restored = Blockwise.Dequantize8Bit(Absmax, NestedAbsmax, NestedCode!, Blockwise.NestedBlocksize) + Offset;
        return restored.MoveToOuterDisposeScope();
    }

    /// <summary>The weight <c>(out, in)</c>: dequantized in fp32, then cast to <paramref name="dtype"/> (default: the
    /// original <see cref="DType"/>), as <c>dequantize_4bit</c>.</summary>
    public Tensor Dequantize(ScalarType? dtype = null)
    {
        using var scope = NewDisposeScope();
        using var scales = BlockScales();
        return Blockwise.Dequantize4Bit(Packed, scales, Code, Blocksize, Shape, dtype ?? DType).MoveToOuterDisposeScope();
    }

    /// <summary>The tensors the weight keeps, named as their checkpoint keys relative to the layer: <c>weight</c>,
    /// <c>weight.absmax</c>, <c>weight.quant_map</c> and, with double quantization, <c>weight.nested_absmax</c> and
    /// <c>weight.nested_quant_map</c>.</summary>
    public IEnumerable<(string Name, Tensor Value)> Tensors(string weightName = "weight")
    {
        yield return (weightName, Packed);
        yield return ($"{weightName}.{AbsmaxName}", Absmax);
        yield return ($"{weightName}.{QuantMapName}", Code);
        if (DoubleQuant)
        {
            yield return ($"{weightName}.{NestedAbsmaxName}", NestedAbsmax!);
            yield return ($"{weightName}.{NestedQuantMapName}", NestedCode!);
        }
    }

    /// <summary>The <c>weight.quant_state.bitsandbytes__{type}</c> key and its uint8 JSON blob (made on each call).</summary>
    public (string Name, Tensor Value) QuantStateEntry(string weightName = "weight") =>
        ($"{weightName}.{QuantStatePrefix}{Type.Name()}", tensor(Encoding.UTF8.GetBytes(QuantStateJson()), ScalarType.Byte));

    /// <summary>Every checkpoint entry: <see cref="Tensors"/> and the <see cref="QuantStateEntry"/> (bitsandbytes'
    /// packed state dict).</summary>
    public IEnumerable<(string Name, Tensor Value)> StateEntries(string weightName = "weight") =>
        Tensors(weightName).Append(QuantStateEntry(weightName));

    /// <summary>Copies <paramref name="other"/>'s codes and scales into this weight's tensors (same type, shape,
    /// block size and double quantization).</summary>
    public void CopyFrom(FourBitWeight other)
    {
        if (other.Type != Type || other.Blocksize != Blocksize || other.DoubleQuant != DoubleQuant || !other.Shape.SequenceEqual(Shape))
            throw new ArgumentException("the weights are quantized differently.", nameof(other));
        using var noGrad = no_grad();
        Packed.copy_(other.Packed);
        Absmax.copy_(other.Absmax);
        NestedAbsmax?.copy_(other.NestedAbsmax!);
        Offset = other.Offset;
    }

    /// <summary>Bits stored per weight element: every tensor's bytes (codes, scales, tables) over the element count.</summary>
    public double BitsPerParameter => Tensors().Sum(t => t.Value.numel() * t.Value.ElementSize) * 8.0 / ElementCount;

    /// <summary>
    /// The <c>quant_state.bitsandbytes__{type}</c> blob: the UTF-8 bytes of Python's <c>json.dumps</c> of the non-tensor
    /// fields in <c>QuantState.as_dict</c> order (<c>quant_type</c>, <c>blocksize</c>, <c>dtype</c>, <c>shape</c>, then
    /// <c>nested_blocksize</c>, <c>nested_dtype</c>, <c>nested_offset</c>), with Python's separators and float repr.
    /// </summary>
    public string QuantStateJson()
    {
        var text = new StringBuilder();
        text.Append($"{{\"quant_type\": \"{Type.Name()}\", \"blocksize\": {Blocksize}, \"dtype\": \"{DTypeName(DType)}\", ");
        text.Append($"\"shape\": [{string.Join(", ", Shape)}]");
        if (DoubleQuant)
            text.Append($", \"nested_blocksize\": {Blockwise.NestedBlocksize}, \"nested_dtype\": \"float32\", \"nested_offset\": {PythonFloat.Repr(Offset)}");
        text.Append('}');
        return text.ToString();
    }

    /// <summary>
    /// Reads a serialized 4-bit weight (<c>QuantState.from_dict</c>): <paramref name="get"/> returns the tensor stored
    /// under a key suffix relative to the layer (<c>weight</c>, <c>weight.absmax</c>, ...) or null. Tensors are moved
    /// to <paramref name="device"/>. <paramref name="where"/> names the layer in errors.
    /// </summary>
    public static FourBitWeight FromState(Func<string, Tensor?> get, string where, Device device, string weightName = "weight")
    {
        using var scope = NewDisposeScope();
        Tensor Required(string suffix) =>
            get($"{weightName}.{suffix}") ?? throw new LoraException($"{where}: the 4-bit weight has no '{weightName}.{suffix}' tensor.");
        var blob = (get($"{weightName}.{QuantStatePrefix}nf4") ?? get($"{weightName}.{QuantStatePrefix}fp4"))
            ?? throw new LoraException($"{where}: no '{weightName}.{QuantStatePrefix}nf4|fp4' entry (not a bitsandbytes 4-bit weight).");
        var meta = ReadQuantState(blob, where);
        var packed = get(weightName) ?? throw new LoraException($"{where}: the 4-bit weight has no '{weightName}' tensor.");
        if (packed.dtype != ScalarType.Byte)
            throw new LoraException($"{where}: '{weightName}' is {packed.dtype}; a bitsandbytes 4-bit weight is stored as uint8 (quant_storage other than uint8 is not supported).");
        var n = meta.Shape.Aggregate(1L, (a, b) => a * b);
        if (packed.numel() != (n + 1) / 2)
            throw new LoraException($"{where}: '{weightName}' holds {packed.numel()} bytes, but shape ({string.Join(", ", meta.Shape)}) needs {(n + 1) / 2}.");
        var code = Required(QuantMapName).to(ScalarType.Float32);
        if (code.numel() != 16)
            throw new LoraException($"{where}: '{weightName}.{QuantMapName}' has {code.numel()} entries, expected 16.");
        var absmax = Required(AbsmaxName);
        var blocks = (n + meta.Blocksize - 1) / meta.Blocksize;
        if (absmax.numel() != blocks)
            throw new LoraException($"{where}: '{weightName}.{AbsmaxName}' has {absmax.numel()} scales, expected {blocks} (blocksize {meta.Blocksize}).");
        Tensor? nestedAbsmax = null, nestedCode = null;
        if (meta.NestedOffset is not null)
        {
            if (absmax.dtype != ScalarType.Byte)
                throw new LoraException($"{where}: '{weightName}.{AbsmaxName}' must be uint8 codes with double quantization, got {absmax.dtype}.");
            nestedAbsmax = Required(NestedAbsmaxName).to(ScalarType.Float32).to(device);
            nestedCode = Required(NestedQuantMapName).to(ScalarType.Float32).to(device);
        }
        else
        {
            absmax = absmax.to(ScalarType.Float32);
        }

        var result = new FourBitWeight(meta.Type, meta.Blocksize, meta.Shape, meta.DType, packed.reshape(-1, 1).to(device), code.to(device),
            absmax.reshape(-1).to(device), nestedAbsmax?.reshape(-1), nestedCode, meta.NestedOffset ?? 0f);
        result.DetachAll();
        return result;
    }

    /// <summary>Moves every tensor to <paramref name="device"/> (the tensors are replaced).</summary>
    public void MoveTo(Device device)
    {
        Packed = Move(Packed, device);
        Code = Move(Code, device);
        Absmax = Move(Absmax, device);
        if (NestedAbsmax is not null)
            NestedAbsmax = Move(NestedAbsmax, device);
        if (NestedCode is not null)
            NestedCode = Move(NestedCode, device);
    }

    /// <summary>Takes the tensors a module holds under <see cref="Tensors"/>' names again (after the module moved them).</summary>
    public void Rebind(Func<string, Tensor> buffer, string weightName = "weight")
    {
        Packed = buffer(weightName);
        Absmax = buffer($"{weightName}.{AbsmaxName}");
        Code = buffer($"{weightName}.{QuantMapName}");
        if (DoubleQuant)
        {
            NestedAbsmax = buffer($"{weightName}.{NestedAbsmaxName}");
            NestedCode = buffer($"{weightName}.{NestedQuantMapName}");
        }
    }

    public void Dispose()
    {
        Packed.Dispose();
        Code.Dispose();
        Absmax.Dispose();
        NestedAbsmax?.Dispose();
        NestedCode?.Dispose();
    }

    /// <summary>bitsandbytes' dtype names (<c>str(dtype).strip("torch.")</c>).</summary>
    public static string DTypeName(ScalarType dtype) => dtype switch
    {
        ScalarType.BFloat16 => "bfloat16",
        ScalarType.Float16 => "float16",
        ScalarType.Float32 => "float32",
        _ => throw new ArgumentException($"4-bit weights come from bf16/fp16/fp32, not {dtype}.", nameof(dtype)),
    };

    private static ScalarType ParseDType(string name, string where) => name switch
    {
        "bfloat16" => ScalarType.BFloat16,
        "float16" => ScalarType.Float16,
        "float32" => ScalarType.Float32,
        _ => throw new LoraException($"{where}: quant_state dtype '{name}' is not one of bfloat16, float16, float32."),
    };

    private sealed record QuantStateMeta(QuantizationType Type, int Blocksize, ScalarType DType, long[] Shape, float? NestedOffset);

    private static QuantStateMeta ReadQuantState(Tensor blob, string where)
    {
        var bytes = blob.to(ScalarType.Byte).cpu().data<byte>().ToArray();
        try
        {
            using var doc = JsonDocument.Parse(bytes);
            var root = doc.RootElement;
            string Str(string name) => root.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()!
                : throw new LoraException($"{where}: quant_state field '{name}' is missing or not a string.");
            var type = QuantizationTypes.Parse(Str("quant_type")) is { } t && t.IsFourBit() ? t
                : throw new LoraException($"{where}: quant_state quant_type '{Str("quant_type")}' is not nf4 or fp4.");
            var blocksize = root.TryGetProperty("blocksize", out var b) && b.TryGetInt32(out var bs) ? bs
                : throw new LoraException($"{where}: quant_state field 'blocksize' is missing or not an integer.");
            Blockwise.CheckFourBitBlocksize(blocksize);
            var shape = root.TryGetProperty("shape", out var s) && s.ValueKind == JsonValueKind.Array ? s.EnumerateArray().Select(e => e.GetInt64()).ToArray()
                : throw new LoraException($"{where}: quant_state field 'shape' is missing or not a list.");
            if (shape.Length != 2)
                throw new LoraException($"{where}: quant_state shape [{string.Join(", ", shape)}] is not a 2-D (out, in) weight.");
            float? offset = null;
            if (root.TryGetProperty("nested_offset", out var o) && o.ValueKind == JsonValueKind.Number)
            {
                offset = (float)o.GetDouble();
                if (root.TryGetProperty("nested_blocksize", out var nb) && nb.GetInt32() != Blockwise.NestedBlocksize)
                    throw new LoraException($"{where}: quant_state nested_blocksize {nb.GetInt32()} is not {Blockwise.NestedBlocksize}.");
            }

            return new QuantStateMeta(type, blocksize, ParseDType(Str("dtype"), where), shape, offset);
        }
        catch (JsonException e)
        {
            throw new LoraException($"{where}: the quant_state entry is not valid JSON ({e.Message}).", e);
        }
    }

    private void DetachAll()
    {
        Packed.DetachFromDisposeScope();
        Code.DetachFromDisposeScope();
        Absmax.DetachFromDisposeScope();
        NestedAbsmax?.DetachFromDisposeScope();
        NestedCode?.DetachFromDisposeScope();
    }

    private static Tensor Move(Tensor t, Device device)
    {
        if (Devices.Same(t.device, device))
            return t;
        var moved = t.to(device).DetachFromDisposeScope();
        t.Dispose();
        return moved;
    }
}

/// <summary>Python's <c>repr(float)</c> (what <c>json.dumps</c> writes): the shortest round-trip digits, positional
/// for exponents −4…15, else <c>d.ddde±XX</c>; integral values keep <c>.0</c>.</summary>
internal static class PythonFloat
{
    public static string Repr(double value)
    {
        if (double.IsNaN(value))
            return "NaN";
        if (double.IsInfinity(value))
            return value > 0 ? "Infinity" : "-Infinity";
        if (value == 0)
            return double.IsNegative(value) ? "-0.0" : "0.0";
        // "E16" rounds; "R" gives the shortest round-trip digits: split them into sign, digits and exponent.
        var r = value.ToString("R", CultureInfo.InvariantCulture);
        var negative = r.StartsWith('-');
        if (negative)
            r = r[1..];
        var exponent = 0;
        var e = r.IndexOfAny(['E', 'e']);
        if (e >= 0)
        {
            exponent = int.Parse(r[(e + 1)..], CultureInfo.InvariantCulture);
            r = r[..e];
        }

        var dot = r.IndexOf('.');
        var intPart = dot >= 0 ? r[..dot] : r;
        var frac = dot >= 0 ? r[(dot + 1)..] : "";
        var digits = (intPart + frac).TrimStart('0');
        var leadingZeros = (intPart + frac).Length - (intPart + frac).TrimStart('0').Length;
        // Decimal exponent of the first significant digit.
        var decimalExponent = intPart.Length - 1 - leadingZeros + exponent;
        digits = digits.TrimEnd('0');
        if (digits.Length == 0)
            digits = "0";
        string body;
        if (decimalExponent < -4 || decimalExponent >= 16)
        {
            var mantissa = digits.Length > 1 ? $"{digits[0]}.{digits[1..]}" : digits;
            body = $"{mantissa}e{(decimalExponent < 0 ? '-' : '+')}{Math.Abs(decimalExponent):D2}";
        }
        else if (decimalExponent < 0)
        {
            body = "0." + new string('0', -decimalExponent - 1) + digits;
        }
        else if (digits.Length <= decimalExponent + 1)
        {
            body = digits + new string('0', decimalExponent + 1 - digits.Length) + ".0";
        }
        else
        {
            body = $"{digits[..(decimalExponent + 1)]}.{digits[(decimalExponent + 1)..]}";
        }

        return negative ? "-" + body : body;
    }
}
