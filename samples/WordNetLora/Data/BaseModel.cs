using System.Text.Json;
using Lora.Backend;
using Lora.Models;
using Lora.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace WordNetLora.Data;

/// <summary>The size of the embedded base model (a Llama; <c>config.json</c> fields).</summary>
public sealed record BaseModelShape
{
    public int Hidden { get; init; } = 256;

    public int Layers { get; init; } = 4;

    public int Heads { get; init; } = 4;

    public int KvHeads { get; init; } = 2;

    public int Intermediate { get; init; } = 688;

    public int MaxPositions { get; init; } = 256;
}

/// <summary>
/// Writes a randomly initialised Llama checkpoint directory for the sample's tokenizer (transformers' init, N(0,
/// 0.02²), seeded so the file is reproducible), with tied input/output embeddings; pretraining then starts from it
/// (<c>lora train --mode full</c>, see samples/models/README.md).
/// </summary>
public static class BaseModel
{
    public static long Initialize(string directory, string tokenizerDirectory, BaseModelShape shape, ulong seed)
    {
        TorchRuntime.Initialize("cpu");
        Directory.CreateDirectory(directory);
        foreach (var file in Directory.GetFiles(tokenizerDirectory))
            File.Copy(file, Path.Combine(directory, Path.GetFileName(file)), overwrite: true);
        var vocab = Lora.Tokenization.HfTokenizer.Load(directory).VocabSize;
        var config = new
        {
            architectures = new[] { "LlamaForCausalLM" }, model_type = "llama", vocab_size = vocab, hidden_size = shape.Hidden,
            intermediate_size = shape.Intermediate, num_hidden_layers = shape.Layers, num_attention_heads = shape.Heads,
            num_key_value_heads = shape.KvHeads, head_dim = shape.Hidden / shape.Heads, max_position_embeddings = shape.MaxPositions,
            rms_norm_eps = 1e-6, rope_theta = 10000.0, tie_word_embeddings = true, hidden_act = "silu", bos_token_id = 256,
            eos_token_id = 257, pad_token_id = 258, initializer_range = 0.02, torch_dtype = "float32",
        };
        File.WriteAllText(Path.Combine(directory, "config.json"), JsonSerializer.Serialize(config, new JsonSerializerOptions { WriteIndented = true }) + "\n");
        using var model = new LlamaForCausalLM((LlamaConfig)ModelConfigLoader.Load(directory));
        using var generator = new Generator(seed);
        model.InitializeWeights(generator);
        using (no_grad())
            SafeTensorsWriter.WriteCheckpoint(directory, model.named_parameters().Select(p => KeyValuePair.Create(p.name, (Tensor)p.parameter)));
        return model.parameters().Sum(p => p.numel());
    }
}
