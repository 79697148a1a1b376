using System.Text.Json;
using Lora.Models;
using Lora.Modules;
using Lora.Peft;
using Lora.Tokenization;
using Lora.Tuners.LoRA;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Gguf;

/// <summary>The tensor type of an exported model: <c>--outtype</c> of llama.cpp's convert_hf_to_gguf.py.</summary>
public enum GgufOutType
{
    F32,
    F16,
    BF16,
    Q8_0,
}

/// <summary>
/// Exports Llama-family models (llama, mistral) and their LoRA adapters as llama.cpp loads them.
/// <list type="bullet">
/// <item>Model: <c>convert_hf_to_gguf.py</c> — <c>ModelBase.prepare_tensors</c> (1-D tensors and norms stay F32,
/// Q8_0 falls back to F16 for rows not a multiple of 32), <c>LlamaModel.set_gguf_parameters</c> /
/// <c>modify_tensors</c> (q_proj/k_proj rows permuted from HF's rotate-half rope order back to llama.cpp's
/// interleaved order: <c>LlamaModel.permute</c>), tensor names from <c>gguf-py/gguf/tensor_mapping.py</c>
/// (<c>token_embd</c>, <c>blk.N.attn_q</c>, …, <c>output_norm</c>, <c>output</c>), tokenizer metadata from
/// <c>TextModel._set_vocab_gpt2</c> / <c>get_vocab_base</c> (tokens by id, <c>[PADn]</c> for unused ids, token types,
/// merges, <c>tokenizer.ggml.pre</c>) and <c>gguf.SpecialVocab</c> (special ids, add_bos/add_eos, chat_template).</item>
/// <item>Adapter: <c>convert_lora_to_gguf.py</c> — <c>general.type = adapter</c>, <c>adapter.type = lora</c>,
/// <c>adapter.lora.alpha</c>, tensors <c>NAME.weight.lora_a</c> = PEFT lora_A (r, in) and <c>.lora_b</c> = lora_B
/// (out, r), lora_B rows permuted like the base weight; llama.cpp scales by alpha / r (<c>llama-adapter.cpp</c>), so
/// rsLoRA and rank/alpha patterns are baked into lora_B.</item>
/// </list>
/// </summary>
public static class GgufExport
{
    private static readonly Dictionary<string, string> LayerNames = new(StringComparer.Ordinal)
    {
        ["self_attn.q_proj"] = "attn_q",
        ["self_attn.k_proj"] = "attn_k",
        ["self_attn.v_proj"] = "attn_v",
        ["self_attn.o_proj"] = "attn_output",
        ["mlp.gate_proj"] = "ffn_gate",
        ["mlp.up_proj"] = "ffn_up",
        ["mlp.down_proj"] = "ffn_down",
        ["input_layernorm"] = "attn_norm",
        ["post_attention_layernorm"] = "ffn_norm",
    };

    public static GgufOutType ParseOutType(string text) => text.ToLowerInvariant() switch
    {
        "f32" => GgufOutType.F32,
        "f16" => GgufOutType.F16,
        "bf16" => GgufOutType.BF16,
        "q8_0" => GgufOutType.Q8_0,
        _ => throw new LoraException($"--outtype '{text}' is not one of f32, f16, bf16, q8_0."),
    };

    /// <summary>The GGUF tensor name of a Hugging Face parameter name, or null when it has none.</summary>
    public static string? TensorName(string hfName)
    {
        switch (hfName)
        {
            case "model.embed_tokens.weight": return "token_embd.weight";
            case "model.norm.weight": return "output_norm.weight";
            case "lm_head.weight": return "output.weight";
        }

        const string prefix = "model.layers.";
        if (!hfName.StartsWith(prefix, StringComparison.Ordinal))
        {
            return null;
        }

        var rest = hfName[prefix.Length..];
        var dot = rest.IndexOf('.');
        var layer = rest[..dot];
        var tail = rest[(dot + 1)..];
        var suffixAt = tail.LastIndexOf('.');
        return LayerNames.TryGetValue(tail[..suffixAt], out var name) ? $"blk.{layer}.{name}{tail[suffixAt..]}" : null;
    }

    private static LlamaConfig CheckArchitecture(CausalLM model)
    {
        if (model.Config is not LlamaConfig config || model.Config.ModelType is not ("llama" or "mistral"))
        {
            throw new LoraException($"GGUF export supports Llama-family models (model_type llama, mistral); this model is '{model.Config.ModelType}'.");
        }

        if (config.Rope.Type != "default" && config.Rope.Type != "linear")
        {
            throw new LoraException($"GGUF export: rope_type '{config.Rope.Type}' is not exported yet (default and linear are).");
        }

        if (model.Quantization is not null)
        {
            throw new LoraException("GGUF export needs a dense model: this one is loaded quantized (bitsandbytes); load it without --quantize, or merge it to a dense checkpoint first (lora merge).");
        }

        return config;
    }

    /// <summary>Writes <paramref name="model"/> (base or merged) with the tokenizer of <paramref name="tokenizerDir"/>
    /// as a GGUF model file. Returns the tensor types written, by GGUF name.</summary>
    public static IReadOnlyDictionary<string, GgmlType> WriteModel(CausalLM model, string tokenizerDir, string path, GgufOutType outType, string? name = null)
    {
        var config = CheckArchitecture(model);
        var writer = new GgufWriter();
        writer.Add("general.architecture", "llama");
        writer.Add("general.type", "model");
        writer.Add("general.name", name ?? Path.GetFileName(Path.GetFullPath(tokenizerDir).TrimEnd(Path.DirectorySeparatorChar)));
        writer.Add("general.file_type", (uint)(outType switch
        {
            GgufOutType.F32 => GgufFileType.AllF32,
            GgufOutType.F16 => GgufFileType.MostlyF16,
            GgufOutType.BF16 => GgufFileType.MostlyBF16,
            _ => GgufFileType.MostlyQ8_0,
        }));
        writer.Add("general.quantization_version", 2u);
        writer.Add("llama.vocab_size", (uint)config.VocabSize);
        writer.Add("llama.context_length", (uint)config.MaxPositions);
        writer.Add("llama.embedding_length", (uint)config.HiddenSize);
        writer.Add("llama.block_count", (uint)config.NumLayers);
        writer.Add("llama.feed_forward_length", (uint)config.IntermediateSize);
        writer.Add("llama.rope.dimension_count", (uint)config.HeadDim);
        writer.Add("llama.attention.head_count", (uint)config.NumHeads);
        writer.Add("llama.attention.head_count_kv", (uint)config.NumKvHeads);
        writer.Add("llama.attention.layer_norm_rms_epsilon", (float)config.RmsNormEps);
        writer.Add("llama.rope.freq_base", (float)config.Rope.Theta);
        if (config.HeadDim != config.HiddenSize / config.NumHeads)
        {
            writer.Add("llama.attention.key_length", (uint)config.HeadDim);
            writer.Add("llama.attention.value_length", (uint)config.HeadDim);
        }

        if (config.Rope.Type == "linear")
        {
            writer.Add("llama.rope.scaling.type", "linear");
            writer.Add("llama.rope.scaling.factor", (float)config.Rope.Factor);
        }

        AddTokenizer(writer, tokenizerDir, config.VocabSize);

        var types = new Dictionary<string, GgmlType>(StringComparer.Ordinal);
        foreach (var (hfName, parameter) in model.named_parameters())
        {
            if (hfName.Contains(".adapters.", StringComparison.Ordinal))
            {
                continue; // an attached (unmerged) adapter is exported on its own (WriteLoraAdapter)
            }

            var ggufName = TensorName(hfName) ?? throw new LoraException($"GGUF export: no llama.cpp tensor for parameter '{hfName}'.");
            var shape = parameter.shape;
            var type = shape.Length <= 1 || ggufName.EndsWith("_norm.weight", StringComparison.Ordinal) ? GgmlType.F32 : outType switch
            {
                GgufOutType.F32 => GgmlType.F32,
                GgufOutType.F16 => GgmlType.F16,
                GgufOutType.BF16 => GgmlType.BF16,
                _ => shape[^1] % GgmlQuant.Q8BlockSize == 0 ? GgmlType.Q8_0 : GgmlType.F16, // convert_hf_to_gguf: QuantError → F16
            };
            types[ggufName] = type;
            var permuteHeads = hfName.Contains("self_attn.q_proj", StringComparison.Ordinal) ? config.NumHeads
                : hfName.Contains("self_attn.k_proj", StringComparison.Ordinal) ? config.NumKvHeads : 0;
            var p = parameter;
            writer.AddTensor(ggufName, shape, type, GgmlQuant.ByteCount(type, parameter.numel()), stream =>
                GgmlQuant.Write(stream, type, Values(p, permuteHeads)));
        }

        if (config.TieWordEmbeddings)
        {
            types.Remove("output.weight"); // llama.cpp falls back to token_embd when output.weight is absent
        }

        writer.Write(path);
        return types;
    }

    // A parameter as fp32 values in row-major order; q/k rows permuted when heads > 0.
    private static float[] Values(Tensor parameter, int heads)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var t = parameter.detach().to(ScalarType.Float32).cpu();
        if (heads > 0)
        {
            t = Permute(t, heads);
        }

        return t.contiguous().data<float>().ToArray();
    }

    /// <summary>convert_hf_to_gguf <c>LlamaModel.permute</c>: rows (n_head, 2, d/2) → (n_head, d/2, 2).</summary>
    public static Tensor Permute(Tensor w, int heads)
    {
        var shape = w.shape;
        var rest = shape.Skip(1).ToArray();
        return w.reshape([heads, 2, shape[0] / heads / 2, .. rest]).swapaxes(1, 2).reshape(shape);
    }

    private static void AddTokenizer(GgufWriter writer, string dir, int vocabSize)
    {
        var json = Path.Combine(dir, "tokenizer.json");
        if (!File.Exists(json))
        {
            throw new LoraException($"{json}: not found; GGUF export writes the tokenizer into the file and needs a byte-level BPE tokenizer.json (as convert_hf_to_gguf.py does).");
        }

        var tokenizer = HfTokenizer.Load(dir);
        string pre;
        var merges = new List<string>();
        using (var doc = JsonDocument.Parse(File.ReadAllText(json)))
        {
            var root = doc.RootElement;
            if (root.GetProperty("model").TryGetProperty("merges", out var m))
            {
                foreach (var merge in m.EnumerateArray())
                {
                    merges.Add(merge.ValueKind == JsonValueKind.Array ? $"{merge[0].GetString()} {merge[1].GetString()}" : merge.GetString()!);
                }
            }

            pre = PreTokenizerName(root, json, merges);
        }

        var added = tokenizer.AddedTokens.ToDictionary(t => t.Id);
        var tokens = new List<string>(vocabSize);
        var types = new List<int>(vocabSize);
        for (var id = 0; id < vocabSize; id++)
        {
            var text = tokenizer.IdToToken(id);
            if (text is null)
            {
                tokens.Add($"[PAD{id}]");
                types.Add((int)GgufTokenType.Unused);
            }
            else
            {
                tokens.Add(text);
                types.Add((int)(added.TryGetValue(id, out var a) ? a.Special ? GgufTokenType.Control : GgufTokenType.UserDefined : GgufTokenType.Normal));
            }
        }

        if (tokenizer.VocabSize > vocabSize)
        {
            throw new LoraException($"{json}: the tokenizer has {tokenizer.VocabSize} tokens but the model's vocab_size is {vocabSize}.");
        }

        writer.Add("tokenizer.ggml.model", "gpt2");
        writer.Add("tokenizer.ggml.pre", pre);
        writer.AddArray("tokenizer.ggml.tokens", tokens);
        writer.AddArray("tokenizer.ggml.token_type", types);
        writer.AddArray("tokenizer.ggml.merges", merges); // written even when empty: llama.cpp requires the key for BPE
        if (tokenizer.BosTokenId is { } bos)
        {
            writer.Add("tokenizer.ggml.bos_token_id", (uint)bos);
        }

        if (tokenizer.EosTokenId is { } eos)
        {
            writer.Add("tokenizer.ggml.eos_token_id", (uint)eos);
        }

        if (tokenizer.UnkTokenId is { } unk)
        {
            writer.Add("tokenizer.ggml.unknown_token_id", (uint)unk);
        }

        if (tokenizer.PadTokenId is { } pad)
        {
            writer.Add("tokenizer.ggml.padding_token_id", (uint)pad);
        }

        // What our tokenizer adds (its post-processor or add_bos_token/add_eos_token), so llama.cpp adds the same.
        var probe = tokenizer.Encode("a");
        var plain = tokenizer.Encode("a", addSpecialTokens: false);
        writer.Add("tokenizer.ggml.add_bos_token", tokenizer.BosTokenId is { } b && probe.Length > plain.Length && probe[0] == b);
        writer.Add("tokenizer.ggml.add_eos_token", tokenizer.EosTokenId is { } e && probe.Length > plain.Length && probe[^1] == e);
        if (Chat.ChatTemplate.Load(dir) is { } template)
        {
            writer.Add("tokenizer.chat_template", template.Source);
        }
    }

    // The Split regexes of tokenizer.json that llama.cpp's pre-tokenizers reproduce (src/llama-vocab.cpp,
    // llm_tokenizer_bpe: LLAMA_VOCAB_PRE_TYPE_LLAMA3 and _QWEN2 carry these regexes, case-folded contractions spelled out).
    internal const string Llama3Regex = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    internal const string Qwen2Regex = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    // Runs of one character class (letters, whitespace, other) and single digits: the regex of the WordNetLora sample's
    // BPE trainer (the embedded model's tokenizer). No llama.cpp pre-tokenizer has it; see CategoryRunsPre.
    internal const string CategoryRunsRegex = @"\p{L}+|\p{N}|\s+|[^\s\p{L}\p{N}]+";

    // tokenizer.ggml.pre: the pre-tokenizer llama.cpp must use. convert_hf_to_gguf.py (TextModel.get_vocab_base_pre)
    // recognizes a tokenizer by the ids it gives a test text and refuses unknown ones; here the pre-tokenizer is
    // recognized by its definition, which must be exactly one llama.cpp implements.
    private static string PreTokenizerName(JsonElement root, string path, IReadOnlyList<string> merges)
    {
        var decoder = root.TryGetProperty("decoder", out var d) && d.ValueKind == JsonValueKind.Object && d.TryGetProperty("type", out var dt) ? dt.GetString() : null;
        if (decoder != "ByteLevel")
        {
            throw new LoraException($"{path}: GGUF export handles byte-level BPE tokenizers (decoder ByteLevel: GPT-2, Llama 3, Qwen2 style); this one's decoder is '{decoder ?? "none"}'. SentencePiece-style tokenizers are not exported yet.");
        }

        var preTokenizer = root.TryGetProperty("pre_tokenizer", out var p) ? p : default;
        if (preTokenizer.ValueKind == JsonValueKind.Object && Type(preTokenizer) == "ByteLevel" && UsesRegex(preTokenizer))
        {
            return "gpt-2"; // ByteLevel's own regex is GPT-2's (LLAMA_VOCAB_PRE_TYPE_GPT2)
        }

        // Sequence[Split(Regex R, Isolated), ByteLevel(use_regex=false)]: Llama 3, Qwen2 and the like.
        string? regex = null;
        if (preTokenizer.ValueKind == JsonValueKind.Object && Type(preTokenizer) == "Sequence"
            && preTokenizer.TryGetProperty("pretokenizers", out var list) && list.GetArrayLength() == 2
            && Type(list[0]) == "Split" && Type(list[1]) == "ByteLevel" && !UsesRegex(list[1])
            && list[0].TryGetProperty("behavior", out var behavior) && behavior.GetString() == "Isolated"
            && !(list[0].TryGetProperty("invert", out var invert) && invert.GetBoolean())
            && list[0].TryGetProperty("pattern", out var pattern) && pattern.TryGetProperty("Regex", out var r))
        {
            regex = r.GetString();
        }

        switch (regex)
        {
            case Llama3Regex:
                return "llama-bpe";
            case Qwen2Regex:
                return "qwen2";
            case CategoryRunsRegex:
                return CategoryRunsPre(merges, path);
        }

        var what = regex is null ? (preTokenizer.ValueKind == JsonValueKind.Object ? preTokenizer.GetRawText() : "none") : $"Split regex {regex}";
        throw new LoraException($"{path}: pre_tokenizer ({(what.Length > 200 ? what[..200] + "…" : what)}) is not one llama.cpp implements (GPT-2's ByteLevel, the Llama 3 or Qwen2 Split regex, or this toolkit's category runs); llama.cpp would split text differently, so the GGUF is not written.");
    }

    private static string? Type(JsonElement e) => e.TryGetProperty("type", out var t) ? t.GetString() : null;

    private static bool UsesRegex(JsonElement byteLevel) => !byteLevel.TryGetProperty("use_regex", out var r) || r.GetBoolean();

    /// <summary>
    /// For the category-runs regex no llama.cpp pre-tokenizer splits the same way, but "superbpe" (llama-vocab.cpp:
    /// regexes <c>\p{N}+</c> and <c>(?=(\d{3})+(?!\d))</c>) splits only around digits, so each of its pieces is a
    /// concatenation of whole category-run pieces. BPE over such a piece gives the same tokens as BPE over each run
    /// alone exactly when no merge joins text across two runs: every merge's text must be complete UTF-8 of one
    /// class (letters, whitespace or other) and never two digits. A tokenizer trained on these runs (the sample's
    /// BPE trainer) has only such merges; that is checked here, merge by merge, and the export refused otherwise.
    /// </summary>
    internal static string CategoryRunsPre(IReadOnlyList<string> merges, string path)
    {
        var bytes = new List<byte>();
        foreach (var merge in merges)
        {
            bytes.Clear();
            var text = merge.Replace(" ", "", StringComparison.Ordinal);
            string decoded;
            try
            {
                decoded = ByteLevelAlphabet.TryDecode(text, bytes)
                    ? new System.Text.UTF8Encoding(false, throwOnInvalidBytes: true).GetString([.. bytes])
                    : throw new ArgumentException("not byte-level");
            }
            catch (ArgumentException)
            {
                throw new LoraException($"{path}: merge \"{merge}\" is not complete UTF-8 text; llama.cpp's pre-tokenizer for this Split regex (superbpe) could join it across character runs, so the GGUF is not written.");
            }

            var classes = new HashSet<char>();
            var digits = 0;
            for (var i = 0; i < decoded.Length; i += char.IsSurrogatePair(decoded, i) ? 2 : 1)
            {
                var c = CharClass(decoded, i);
                classes.Add(c);
                digits += c == 'N' ? 1 : 0;
            }

            if (classes.Count > 1 || digits > 1)
            {
                throw new LoraException($"{path}: merge \"{merge}\" joins characters the Split regex keeps apart; llama.cpp (superbpe pre-tokenizer) would merge across them, so the GGUF is not written.");
            }
        }

        return "superbpe";
    }

    private static char CharClass(string s, int i)
    {
        var cp = char.ConvertToUtf32(s, i);
        if (System.Text.Rune.IsWhiteSpace(new System.Text.Rune(cp)))
        {
            return 'S';
        }

        return System.Globalization.CharUnicodeInfo.GetUnicodeCategory(cp) switch
        {
            >= System.Globalization.UnicodeCategory.UppercaseLetter and <= System.Globalization.UnicodeCategory.OtherLetter => 'L',
            >= System.Globalization.UnicodeCategory.DecimalDigitNumber and <= System.Globalization.UnicodeCategory.OtherNumber => 'N',
            _ => 'O',
        };
    }

    /// <summary>Writes the LoRA adapter <paramref name="adapterName"/> attached to <paramref name="model"/> as a
    /// GGUF LoRA adapter (convert_lora_to_gguf.py's layout). Refuses what llama.cpp cannot apply.</summary>
    public static int WriteLoraAdapter(CausalLM model, PeftConfig peftConfig, string path, string adapterName = PeftAdapter.DefaultName)
    {
        var config = CheckArchitecture(model);
        if (peftConfig is not LoraConfig lora)
        {
            throw new LoraException($"GGUF adapters are LoRA only: this adapter is {peftConfig.GetType().Name.Replace("Config", "")} (peft_type). Merge it instead: lora export --format gguf --adapter DIR --merge.");
        }

        if (lora.UseDora)
        {
            throw new LoraException("llama.cpp cannot apply DoRA adapters (use_dora: its magnitude vector has no GGUF form). Merge it instead: lora export --format gguf --adapter DIR --merge.");
        }

        if (lora.ModulesToSave is { Count: > 0 } || lora.Bias != LoraBias.None || lora.LoraBiasTerm)
        {
            throw new LoraException("llama.cpp applies only lora_A/lora_B pairs: this adapter also trains modules_to_save or biases. Merge it instead: lora export --format gguf --adapter DIR --merge.");
        }

        var writer = new GgufWriter();
        writer.Add("general.architecture", "llama");
        writer.Add("general.type", "adapter");
        writer.Add("adapter.type", "lora");
        writer.Add("adapter.lora.alpha", (float)lora.LoraAlpha);
        var count = 0;
        foreach (var (path2, module) in model.named_modules())
        {
            if (module is EmbeddingLayer embedding && embedding.HasAdapter(adapterName))
            {
                throw new LoraException($"GGUF export: the adapter adapts the embedding '{path2}', which this exporter does not write; merge it instead (--merge).");
            }

            if (module is not LinearLayer layer || !layer.HasAdapter(adapterName))
            {
                continue;
            }

            var name = TensorName(path2 + ".weight") ?? throw new LoraException($"GGUF export: no llama.cpp tensor for adapted layer '{path2}'.");
            var adapter = (LoraAdapter)layer.Adapter(adapterName);
            // llama.cpp: scale = alpha / rank with rank = lora_b.ne[0]; bake this layer's own scaling into B.
            var bake = adapter.Scaling * adapter.Rank / lora.LoraAlpha;
            var heads = path2.EndsWith("self_attn.q_proj", StringComparison.Ordinal) ? config.NumHeads
                : path2.EndsWith("self_attn.k_proj", StringComparison.Ordinal) ? config.NumKvHeads : 0;
            float[] a, b;
            using (NewDisposeScope())
            using (no_grad())
            {
                a = adapter.LoraA.weight!.detach().to(ScalarType.Float32).cpu().contiguous().data<float>().ToArray();
                var bt = adapter.LoraB.weight!.detach().to(ScalarType.Float32).cpu() * bake;
                if (heads > 0)
                {
                    bt = Permute(bt, heads);
                }

                b = bt.contiguous().data<float>().ToArray();
            }

            var aShape = adapter.LoraA.weight!.shape;
            var bShape = adapter.LoraB.weight!.shape;
            writer.AddTensor(name + ".lora_a", aShape, GgmlType.F32, a.Length * 4L, s => GgmlQuant.Write(s, GgmlType.F32, a));
            writer.AddTensor(name + ".lora_b", bShape, GgmlType.F32, b.Length * 4L, s => GgmlQuant.Write(s, GgmlType.F32, b));
            count++;
        }

        if (count == 0)
        {
            throw new LoraException($"GGUF export: adapter '{adapterName}' has no LoRA layers on this model.");
        }

        writer.Write(path);
        return count;
    }

    /// <summary>An Ollama Modelfile: FROM the model, ADAPTER the adapter when there is one (Ollama docs/modelfile.md).
    /// Ollama reads the chat template from the GGUF's tokenizer.chat_template.</summary>
    public static string Modelfile(string modelFile, string? adapterFile, string? eosToken)
    {
        var lines = new List<string>
        {
            "# Ollama Modelfile written by lora export (ollama create NAME -f Modelfile)",
            $"FROM ./{modelFile}",
        };
        if (adapterFile is not null)
        {
            lines.Add($"ADAPTER ./{adapterFile}");
        }

        if (eosToken is not null)
        {
            lines.Add($"PARAMETER stop \"{eosToken.Replace("\"", "\\\"", StringComparison.Ordinal)}\"");
        }

        return string.Join("\n", lines) + "\n";
    }
}
