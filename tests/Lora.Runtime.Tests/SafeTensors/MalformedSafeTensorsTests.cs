using Lora.SafeTensors;

namespace Lora.Runtime.Tests.SafeTensors;

/// <summary>Every malformed file is one clear <see cref="SafeTensorsFormatException"/> naming the file and the
/// problem: no crash, no huge allocation.</summary>
public class MalformedSafeTensorsTests
{
    private const string Good = """{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}""";

    public static TheoryData<string, byte[], string> Cases() => new()
    {
        { "empty", [], "too short" },
        { "short length", [1, 2, 3], "too short" },
        { "absurd header length", [.. BitConverter.GetBytes(ulong.MaxValue - 5), .. new byte[16]], "exceeds the file size" },
        { "header past end", [.. BitConverter.GetBytes(1000UL), .. new byte[16]], "exceeds the file size" },
        { "bad json", SafeTensorsReadWriteTests.Raw("{\"w\": [", new byte[8]), "not valid JSON" },
        { "not an object", SafeTensorsReadWriteTests.Raw("[1,2]", []), "not an object" },
        { "unknown dtype", SafeTensorsReadWriteTests.Raw(Good.Replace("F32", "F33"), new byte[8]), "unknown dtype 'F33'" },
        { "missing shape", SafeTensorsReadWriteTests.Raw("""{"w":{"dtype":"F32","data_offsets":[0,8]}}""", new byte[8]), "'shape'" },
        { "negative dim", SafeTensorsReadWriteTests.Raw(Good.Replace("[2]", "[-2]"), new byte[8]), "shape[0]" },
        { "offsets out of range", SafeTensorsReadWriteTests.Raw(Good, new byte[4]), "run past the 4-byte data section" },
        { "size mismatch", SafeTensorsReadWriteTests.Raw(Good.Replace("[2]", "[3]"), new byte[8]), "needs 12 bytes but data_offsets span 8" },
        { "reversed offsets", SafeTensorsReadWriteTests.Raw(Good.Replace("[0,8]", "[8,0]"), new byte[8]), "begin <= end" },
        {
            "overlap",
            SafeTensorsReadWriteTests.Raw("""{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""", new byte[12]),
            "overlap"
        },
        { "metadata not strings", SafeTensorsReadWriteTests.Raw("""{"__metadata__":{"format":1}}""", []), "__metadata__.format" },
        { "huge shape", SafeTensorsReadWriteTests.Raw(Good.Replace("[2]", "[4611686018427387904,4]"), new byte[8]), "too large" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Malformed_file_is_one_clear_error(string name, byte[] content, string expected)
    {
        var path = Path.Combine(Fixtures.TempDirectory(), name.Replace(' ', '_') + ".safetensors");
        File.WriteAllBytes(path, content);
        var e = Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsFile.Open(path).Dispose());
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Truncated_real_checkpoint_is_refused()
    {
        var source = Path.Combine(Fixtures.Peft("llama_qv", "base"), "model.safetensors");
        var bytes = File.ReadAllBytes(source);
        var path = Path.Combine(Fixtures.TempDirectory(), "model.safetensors");
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        var e = Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsCheckpoint.Open(Path.GetDirectoryName(path)!).Dispose());
        Assert.Contains("truncated", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Index_naming_a_missing_tensor_is_refused()
    {
        var dir = Fixtures.TempDirectory();
        File.WriteAllBytes(Path.Combine(dir, "a.safetensors"), SafeTensorsReadWriteTests.Raw(Good, new byte[8]));
        File.WriteAllText(Path.Combine(dir, SafeTensorsCheckpoint.IndexFileName), """{"metadata":{},"weight_map":{"w":"a.safetensors","v":"a.safetensors"}}""");
        var e = Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsCheckpoint.Open(dir).Dispose());
        Assert.Contains("'v'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Index_with_a_missing_shard_is_refused()
    {
        var dir = Fixtures.TempDirectory();
        File.WriteAllText(Path.Combine(dir, SafeTensorsCheckpoint.IndexFileName), """{"weight_map":{"w":"gone.safetensors"}}""");
        var e = Assert.Throws<SafeTensorsFormatException>(() => SafeTensorsCheckpoint.Open(dir).Dispose());
        Assert.Contains("gone.safetensors", e.Message, StringComparison.Ordinal);
        Assert.Contains("not found", e.Message, StringComparison.Ordinal);
    }
}
