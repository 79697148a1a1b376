using Lora.Gguf;

namespace Lora.Serving.Tests;

/// <summary>The files `lora export --format gguf` writes: header, metadata keys and tensor table as llama.cpp's
/// convert_hf_to_gguf.py / convert_lora_to_gguf.py write them; refusals and the Modelfile.</summary>
public sealed class GgufFileTests
{
    [Fact]
    public void ModelFile_HeaderMetadataAndTensorTable()
    {
        var dir = Serving.Export(Serving.TinyLlama, outType: "q8_0");
        var path = Path.Combine(dir, "model.gguf");
        var file = GgufFile.Read(path);
        var m = file.Metadata;
        Assert.Equal(3u, file.Version);
        Assert.Equal("llama", m["general.architecture"]);
        Assert.Equal("model", m["general.type"]);
        Assert.Equal((uint)GgufFileType.MostlyQ8_0, m["general.file_type"]);
        Assert.Equal(128u, m["llama.embedding_length"]);
        Assert.Equal(2u, m["llama.block_count"]);
        Assert.Equal(344u, m["llama.feed_forward_length"]);
        Assert.Equal(4u, m["llama.attention.head_count"]);
        Assert.Equal(2u, m["llama.attention.head_count_kv"]);
        Assert.Equal(32u, m["llama.rope.dimension_count"]);
        Assert.Equal(10000f, m["llama.rope.freq_base"]);
        Assert.Equal(1e-6f, m["llama.attention.layer_norm_rms_epsilon"]);
        Assert.Equal(320u, m["llama.vocab_size"]);
        Assert.Equal("gpt2", m["tokenizer.ggml.model"]);
        Assert.Equal("gpt-2", m["tokenizer.ggml.pre"]);
        var tokens = (object[])m["tokenizer.ggml.tokens"];
        var types = (object[])m["tokenizer.ggml.token_type"];
        Assert.Equal(320, tokens.Length);
        Assert.Equal("Ġ", tokens[32]);
        Assert.Equal("<s>", tokens[256]);
        Assert.Equal("[PAD300]", tokens[300]);
        Assert.Equal((int)GgufTokenType.Normal, types[65]);
        Assert.Equal((int)GgufTokenType.Control, types[257]);
        Assert.Equal((int)GgufTokenType.Unused, types[300]);
        Assert.Empty((object[])m["tokenizer.ggml.merges"]);
        Assert.Equal(256u, m["tokenizer.ggml.bos_token_id"]);
        Assert.Equal(257u, m["tokenizer.ggml.eos_token_id"]);
        Assert.Equal(258u, m["tokenizer.ggml.padding_token_id"]);
        Assert.Equal(true, m["tokenizer.ggml.add_bos_token"]);
        Assert.Equal(false, m["tokenizer.ggml.add_eos_token"]);

        var byName = file.Tensors.ToDictionary(t => t.Name);
        Assert.Equal(21, byName.Count); // embedding, 2 x 9 per block, output_norm, output
        Assert.Equal([320L, 128L], byName["token_embd.weight"].Shape);
        Assert.Equal(GgmlType.Q8_0, byName["token_embd.weight"].Type);
        Assert.Equal([128L, 128L], byName["blk.0.attn_q.weight"].Shape);
        Assert.Equal([64L, 128L], byName["blk.1.attn_k.weight"].Shape);
        Assert.Equal(GgmlType.F32, byName["blk.0.attn_norm.weight"].Type);
        Assert.Equal(GgmlType.F32, byName["output_norm.weight"].Type);
        Assert.Equal(GgmlType.F16, byName["blk.0.ffn_down.weight"].Type); // rows of 344: not a multiple of 32
        Assert.Equal(GgmlType.Q8_0, byName["output.weight"].Type);
        Assert.All(file.Tensors, t => Assert.Equal(0, t.Offset % GgufWriter.Alignment));
        Assert.Equal(0, file.DataOffset % GgufWriter.Alignment);
        var last = file.Tensors.MaxBy(t => t.Offset)!;
        Assert.Equal(file.DataOffset + last.Offset + GgufWriter.Pad(GgmlQuant.ByteCount(last.Type, last.Shape.Aggregate(1L, (a, b) => a * b))), new FileInfo(path).Length);

        var modelfile = File.ReadAllText(Path.Combine(dir, "Modelfile"));
        Assert.Contains("FROM ./model.gguf\n", modelfile);
        Assert.DoesNotContain("ADAPTER", modelfile);
    }

    [Fact]
    public void AdapterFile_AsConvertLoraToGgufWritesIt()
    {
        var model = Serving.FixtureModel("llama_rslora_all");
        var dir = Serving.Export(model, Serving.Peft("llama_rslora_all", "adapter"));
        var file = GgufFile.Read(Path.Combine(dir, "adapter.gguf"));
        Assert.Equal("adapter", file.Metadata["general.type"]);
        Assert.Equal("lora", file.Metadata["adapter.type"]);
        Assert.Equal("llama", file.Metadata["general.architecture"]);
        Assert.Equal(16f, file.Metadata["adapter.lora.alpha"]);
        var byName = file.Tensors.ToDictionary(t => t.Name);
        Assert.Equal(2 * 2 * 7, byName.Count); // 2 layers x 7 linear layers x (a, b)
        Assert.Equal([8L, 64L], byName["blk.0.attn_q.weight.lora_a"].Shape);   // lora_A (r, in)
        Assert.Equal([64L, 8L], byName["blk.0.attn_q.weight.lora_b"].Shape);   // lora_B (out, r)
        Assert.Equal([128L, 8L], byName["blk.1.ffn_up.weight.lora_b"].Shape); // intermediate_size 128
        Assert.All(file.Tensors, t => Assert.Equal(GgmlType.F32, t.Type));
        Assert.Contains("ADAPTER ./adapter.gguf\n", File.ReadAllText(Path.Combine(dir, "Modelfile")));
    }

    [Fact]
    public void Q8_0_IsGgmlBlockFormat()
    {
        var values = Enumerable.Range(0, 64).Select(i => (float)Math.Sin(i) * (i < 32 ? 3f : 0.01f)).ToArray();
        var bytes = new byte[GgmlQuant.ByteCount(GgmlType.Q8_0, values.Length)];
        GgmlQuant.Encode(GgmlType.Q8_0, values, bytes);
        Assert.Equal(2 * 34, bytes.Length);
        Assert.Equal(127, (sbyte)bytes[2 + Array.IndexOf(values, values.Take(32).MaxBy(Math.Abs))] * Math.Sign(values.Take(32).MaxBy(Math.Abs)));
        var decoded = GgmlQuant.DecodeQ8_0(bytes);
        for (var i = 0; i < values.Length; i++)
        {
            var scale = values.Skip(i / 32 * 32).Take(32).Max(Math.Abs) / 127f;
            Assert.InRange(Math.Abs(decoded[i] - values[i]), 0, (scale * 0.5f) + (scale * 1e-3f) + 1e-7f);
        }

        Assert.Equal(0x3f80, GgmlQuant.ToBf16(1f));
        Assert.Equal(0x3f81, GgmlQuant.ToBf16(BitConverter.UInt32BitsToSingle(0x3f80c000))); // ties to even (up)
        Assert.Equal(0x3f80, GgmlQuant.ToBf16(BitConverter.UInt32BitsToSingle(0x3f808000))); // ties to even (down)
    }

    [Fact]
    public void DoraAdapter_IsRefusedWithTheFix()
    {
        var model = Serving.FixtureModel("llama_dora_qv");
        var outDir = Serving.TempDirectory();
        var (code, stdout, stderr) = Serving.Cli("export", "--format", "gguf", "--model", model, "--adapter", Serving.Peft("llama_dora_qv", "adapter"), "--out", outDir, "--device", "cpu");
        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        Assert.StartsWith("error: llama.cpp cannot apply DoRA adapters", stderr);
        Assert.Contains("--merge", stderr);
        Assert.Empty(Directory.GetFiles(outDir));

        // Merged, it exports.
        Assert.True(File.Exists(Path.Combine(Serving.Export(model, Serving.Peft("llama_dora_qv", "adapter"), merge: true), "model.gguf")));
    }

    [Theory]
    [InlineData("--format", "onnx", "error: --format 'onnx' is not supported (supported: gguf).")]
    [InlineData("--outtype", "q4_k", "error: --outtype 'q4_k' is not one of f32, f16, bf16, q8_0.")]
    public void BadOptions_OneErrorLine(string option, string value, string expected)
    {
        var args = new List<string> { "export", "--format", "gguf", "--model", Serving.TinyLlama, "--out", Serving.TempDirectory(), "--device", "cpu" };
        var at = args.IndexOf(option);
        if (at >= 0)
        {
            args[at + 1] = value;
        }
        else
        {
            args.AddRange([option, value]);
        }

        var (code, stdout, stderr) = Serving.Cli([.. args]);
        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        Assert.Equal(expected, stderr.Trim());
    }

    [Fact]
    public void GenerateJson_ReportsPromptTokens()
    {
        var (code, stdout, stderr) = Serving.Cli("generate", "--model", Serving.TinyLlama, "--prompt", "Hi", "--max-new-tokens", "2", "--json", "--device", "cpu");
        Assert.True(code == 0, stderr);
        Assert.Contains("\"prompt_tokens\":[256,72,105]", stdout);
    }
}
