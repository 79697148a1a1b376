using Lora.Gguf;

namespace Lora.Serving.Tests;

/// <summary>The files `lora export --format gguf` writes: header, metadata keys and tensor table as llama.cpp's
/// convert_hf_to_gguf.py / convert_lora_to_gguf.py write them; refusals and the Modelfile.</summary>
public sealed class GgufFileTests
{
    [Fact]
    public void ModelFile_HeaderMetadataAndTensorTable()
    {
        var dir = Serving.Export(Serving.Embedded, outType: "q8_0");
        var path = Path.Combine(dir, "model.gguf");
        var file = GgufFile.Read(path);
        var m = file.Metadata;
        Assert.Equal(3u, file.Version);
        Assert.Equal("llama", m["general.architecture"]);
        Assert.Equal("model", m["general.type"]);
        Assert.Equal((uint)GgufFileType.MostlyQ8_0, m["general.file_type"]);
        Assert.Equal(256u, m["llama.embedding_length"]);
        Assert.Equal(4u, m["llama.block_count"]);
        Assert.Equal(688u, m["llama.feed_forward_length"]);
        Assert.Equal(4u, m["llama.attention.head_count"]);
        Assert.Equal(2u, m["llama.attention.head_count_kv"]);
        Assert.Equal(64u, m["llama.rope.dimension_count"]);
        Assert.Equal(10000f, m["llama.rope.freq_base"]);
        Assert.Equal(1e-6f, m["llama.attention.layer_norm_rms_epsilon"]);
        Assert.Equal(6211u, m["llama.vocab_size"]);
        Assert.False(m.ContainsKey("llama.attention.key_length")); // head_dim 64 = 256 / 4
        Assert.Equal("gpt2", m["tokenizer.ggml.model"]);
        Assert.Equal("superbpe", m["tokenizer.ggml.pre"]); // the category-runs Split regex: see GgufExport.CategoryRunsPre
        var tokens = (object[])m["tokenizer.ggml.tokens"];
        var types = (object[])m["tokenizer.ggml.token_type"];
        Assert.Equal(6211, tokens.Length);
        Assert.Equal("Ġ", tokens[32]);
        Assert.Equal("<s>", tokens[256]);
        Assert.Equal((int)GgufTokenType.Normal, types[65]);
        Assert.Equal((int)GgufTokenType.Control, types[257]);
        var merges = (object[])m["tokenizer.ggml.merges"];
        Assert.Equal(5952, merges.Length);
        Assert.Equal("o n", merges[0]);
        Assert.Equal(256u, m["tokenizer.ggml.bos_token_id"]);
        Assert.Equal(257u, m["tokenizer.ggml.eos_token_id"]);
        Assert.Equal(258u, m["tokenizer.ggml.padding_token_id"]);
        Assert.Equal(true, m["tokenizer.ggml.add_bos_token"]);
        Assert.Equal(false, m["tokenizer.ggml.add_eos_token"]);

        var byName = file.Tensors.ToDictionary(t => t.Name);
        Assert.Equal(38, byName.Count); // embedding, 4 x 9 per block, output_norm; tied embeddings: no output.weight
        Assert.False(byName.ContainsKey("output.weight"));
        Assert.Equal([6211L, 256L], byName["token_embd.weight"].Shape);
        Assert.Equal(GgmlType.Q8_0, byName["token_embd.weight"].Type);
        Assert.Equal([256L, 256L], byName["blk.0.attn_q.weight"].Shape);
        Assert.Equal([128L, 256L], byName["blk.3.attn_k.weight"].Shape);
        Assert.Equal(GgmlType.F32, byName["blk.0.attn_norm.weight"].Type);
        Assert.Equal(GgmlType.F32, byName["output_norm.weight"].Type);
        Assert.Equal(GgmlType.F16, byName["blk.0.ffn_down.weight"].Type); // rows of 688: not a multiple of 32
        Assert.Equal(GgmlType.Q8_0, byName["blk.0.ffn_up.weight"].Type);
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
        var args = new List<string> { "export", "--format", "gguf", "--model", Serving.Embedded, "--out", Serving.TempDirectory(), "--device", "cpu" };
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
        var (code, stdout, stderr) = Serving.Cli("generate", "--model", Serving.Embedded, "--prompt", "Hi", "--max-new-tokens", "2", "--json", "--device", "cpu");
        Assert.True(code == 0, stderr);
        Assert.Contains("\"prompt_tokens\":[256,72,105]", stdout);

        // --chat renders --prompt with the model's chat template; --instruction is --template's: not both.
        (code, stdout, stderr) = Serving.Cli("generate", "--model", Serving.Embedded, "--chat", "--instruction", "Hi", "--device", "cpu");
        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        Assert.StartsWith("error: --chat sends --prompt through the model's own chat template", stderr);
    }

    [Fact]
    public void CategoryRunsTokenizer_ExportsAsSuperbpe_OnlyWhenNoMergeCrossesARun()
    {
        // Merges inside one run (letters, whitespace, other; a multi-byte letter) are what superbpe reproduces.
        Assert.Equal("superbpe", GgufExport.CategoryRunsPre(["o n", "Ċ Ċ", "Ã ©", ". ."], "t.json"));
        // A merge across runs (space + letter, two digits, letter + punctuation) or of an incomplete UTF-8 sequence
        // would be applied by llama.cpp where HF never applies it.
        foreach (var merge in new[] { "Ġ a", "1 2", "a .", "a Ã" })
        {
            var e = Assert.Throws<LoraException>(() => GgufExport.CategoryRunsPre(["o n", merge], "t.json"));
            Assert.Contains($"merge \"{merge}\"", e.Message);
        }
    }

    [Theory]
    [InlineData(@"\\p{L}+|\\s+|[^\\s\\p{L}]+")] // digits not isolated: no llama.cpp pre-tokenizer
    [InlineData(@"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s+")] // Qwen2's, shortened
    public void UnknownPreTokenizer_IsRefused_NothingWritten(string regex)
    {
        var model = Serving.TempDirectory();
        foreach (var f in Directory.GetFiles(Serving.Embedded))
        {
            File.Copy(f, Path.Combine(model, Path.GetFileName(f)));
        }

        var json = File.ReadAllText(Path.Combine(model, "tokenizer.json"));
        var original = @"\\p{L}+|\\p{N}|\\s+|[^\\s\\p{L}\\p{N}]+";
        Assert.Contains(original, json);
        File.WriteAllText(Path.Combine(model, "tokenizer.json"), json.Replace(original, regex));
        var outDir = Serving.TempDirectory();
        var (code, _, stderr) = Serving.Cli("export", "--format", "gguf", "--model", model, "--out", outDir, "--device", "cpu");
        Assert.Equal(1, code);
        Assert.Contains("is not one llama.cpp implements", stderr);
        Assert.Empty(Directory.GetFileSystemEntries(outDir));
    }

    [Theory]
    [InlineData("llama3", GgufExport.Llama3Regex)]
    [InlineData("qwen3", GgufExport.Qwen2Regex)]
    public void KnownRegexes_AreTheFixturesOwn(string fixture, string regex)
    {
        // The Split regexes recognized as llama-bpe / qwen2 are byte for byte those of the real tokenizers.
        var path = Path.Combine(Serving.Root, "fixtures", "tokenizers", fixture, "tokenizer.json.gz");
        using var gz = new System.IO.Compression.GZipStream(File.OpenRead(path), System.IO.Compression.CompressionMode.Decompress);
        using var doc = System.Text.Json.JsonDocument.Parse(gz);
        Assert.Equal(regex, doc.RootElement.GetProperty("pre_tokenizer").GetProperty("pretokenizers")[0].GetProperty("pattern").GetProperty("Regex").GetString());
    }
}
