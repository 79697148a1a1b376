using System.Text;
using System.Text.Json;
using Lora.SafeTensors;
using TorchSharp;

namespace Lora.Runtime.Tests.SafeTensors;

public class SafeTensorsReadWriteTests
{
    [Fact]
    public void Reads_a_checkpoint_written_by_transformers()
    {
        using var ckpt = SafeTensorsCheckpoint.Open(Fixtures.Peft("llama_qv", "base"));
        Assert.Contains("model.embed_tokens.weight", ckpt.Keys);
        var entry = ckpt.Entry("model.layers.0.self_attn.k_proj.weight");
        Assert.Equal(SafeTensorsDType.F32, entry.DType);
        Assert.Equal(new long[] { 32, 64 }, entry.Shape); // GQA: 2 kv heads × head_dim 16
        using var w = ckpt.Load("model.layers.0.self_attn.k_proj.weight");
        Assert.Equal(new long[] { 32, 64 }, w.shape);
        Assert.True(w.abs().sum().item<float>() > 0);
    }

    [Fact]
    public void Reads_int64_input_ids_of_the_expected_outputs()
    {
        using var file = SafeTensorsFile.Open(Path.Combine(Fixtures.Peft("llama_qv"), "expected.safetensors"));
        using var ids = file.Load("input_ids");
        Assert.Equal(torch.ScalarType.Int64, ids.dtype);
        Assert.Equal(new long[] { 2, 16 }, ids.shape);
    }

    [Theory]
    [InlineData(torch.ScalarType.Float32)]
    [InlineData(torch.ScalarType.Float16)]
    [InlineData(torch.ScalarType.BFloat16)]
    [InlineData(torch.ScalarType.Float64)]
    [InlineData(torch.ScalarType.Int64)]
    [InlineData(torch.ScalarType.Int32)]
    [InlineData(torch.ScalarType.Int16)]
    [InlineData(torch.ScalarType.Int8)]
    [InlineData(torch.ScalarType.Byte)]
    [InlineData(torch.ScalarType.Bool)]
    public void Round_trips_every_dtype(torch.ScalarType dtype)
    {
        var dir = Fixtures.TempDirectory();
        var path = Path.Combine(dir, "t.safetensors");
        using var source = (torch.arange(0, 24, dtype: torch.ScalarType.Float32) - 7).reshape(2, 3, 4).to(dtype);
        using var scalar = torch.tensor(3.5f).to(dtype == torch.ScalarType.Bool ? torch.ScalarType.Bool : dtype);
        SafeTensorsWriter.Write(path, new Dictionary<string, torch.Tensor> { ["a.weight"] = source, ["scalar"] = scalar });

        using var file = SafeTensorsFile.Open(path);
        Assert.Equal("pt", file.Metadata["format"]);
        using var back = file.Load("a.weight");
        Assert.Equal(dtype, back.dtype);
        Assert.Equal(source.shape, back.shape);
        Assert.True(source.eq(back).all().item<bool>());
        using var scalarBack = file.Load("scalar");
        Assert.Empty(scalarBack.shape);
        Assert.True(scalar.eq(scalarBack).all().item<bool>());
    }

    [Fact]
    public void Header_is_aligned_sorted_and_loads_convert_dtype()
    {
        var path = Path.Combine(Fixtures.TempDirectory(), "t.safetensors");
        using var b = torch.ones(3);
        using var a = torch.zeros(2, 2);
        SafeTensorsWriter.Write(path, new Dictionary<string, torch.Tensor> { ["b"] = b, ["a"] = a });
        var bytes = File.ReadAllBytes(path);
        var n = BitConverter.ToInt64(bytes, 0);
        Assert.Equal(0, n % 8);
        var header = Encoding.UTF8.GetString(bytes, 8, (int)n).TrimEnd(' ');
        using var doc = JsonDocument.Parse(header);
        Assert.Equal(new[] { "__metadata__", "a", "b" }, doc.RootElement.EnumerateObject().Select(p => p.Name));

        using var file = SafeTensorsFile.Open(path);
        using var bf16 = file.Load("b", torch.ScalarType.BFloat16);
        Assert.Equal(torch.ScalarType.BFloat16, bf16.dtype);
    }

    [Fact]
    public void Sharded_checkpoint_round_trips_through_the_index()
    {
        var dir = Fixtures.TempDirectory();
        var tensors = Enumerable.Range(0, 5).ToDictionary(i => $"layer.{i}.weight", i => torch.full(100, i, torch.ScalarType.Float32));
        var files = SafeTensorsWriter.WriteCheckpoint(dir, tensors, maxShardBytes: 800);
        Assert.Equal(4, files.Count); // 400 bytes per tensor, two per shard: 3 shards + index
        Assert.True(File.Exists(Path.Combine(dir, "model-00001-of-00003.safetensors")));
        using (var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, SafeTensorsCheckpoint.IndexFileName))))
            Assert.Equal(2000, doc.RootElement.GetProperty("metadata").GetProperty("total_size").GetInt64());

        using var ckpt = SafeTensorsCheckpoint.Open(dir);
        Assert.Equal(5, ckpt.Keys.Count);
        for (var i = 0; i < 5; i++)
        {
            using var t = ckpt.Load($"layer.{i}.weight");
            Assert.Equal(i * 100f, t.sum().item<float>());
        }

        foreach (var t in tensors.Values)
            t.Dispose();
    }

    [Fact]
    public void Float8_tensors_decode_to_float32()
    {
        // e4m3fn: 0x38 = 1.0, 0xC0 = -2.0, 0x7E = 448 (max), 0x01 = 2^-9 (smallest subnormal)
        // e5m2:   0x3C = 1.0, 0xC0 = -2.0, 0x7C = +inf
        var path = Path.Combine(Fixtures.TempDirectory(), "f8.safetensors");
        var header = """{"a":{"dtype":"F8_E4M3","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"F8_E5M2","shape":[3],"data_offsets":[4,7]}}""";
        File.WriteAllBytes(path, Raw(header, [0x38, 0xC0, 0x7E, 0x01, 0x3C, 0xC0, 0x7C]));
        using var file = SafeTensorsFile.Open(path);
        using var a = file.Load("a");
        Assert.Equal(new[] { 1f, -2f, 448f, MathF.Pow(2, -9) }, a.data<float>().ToArray());
        using var b = file.Load("b");
        Assert.Equal(new[] { 1f, -2f, float.PositiveInfinity }, b.data<float>().ToArray());
    }

    [Fact]
    public void Interrupted_write_leaves_the_previous_file()
    {
        var path = Path.Combine(Fixtures.TempDirectory(), "keep.safetensors");
        using var good = torch.ones(4);
        SafeTensorsWriter.Write(path, new Dictionary<string, torch.Tensor> { ["x"] = good });
        var before = File.ReadAllBytes(path);
        Assert.ThrowsAny<Exception>(() => AtomicFile.Write(path, s =>
        {
            s.Write(new byte[10]);
            throw new IOException("disk full");
        }));
        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Single(Directory.GetFiles(Path.GetDirectoryName(path)!));
    }

    internal static byte[] Raw(string header, byte[] data)
    {
        var h = Encoding.UTF8.GetBytes(header);
        return [.. BitConverter.GetBytes((ulong)h.Length), .. h, .. data];
    }
}
