using System.Text.Json;
using Lora.Backend;
using Lora.Models;
using Lora.SafeTensors;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Bench;

/// <summary>
/// Writes the embedded default model of the README's main job (samples/models/tiny-llama): a small Llama with
/// transformers' random init (seeded, so the file is reproducible), sized for the byte-level tokenizer beside it.
/// </summary>
internal static class MakeTinyLlama
{
    public static int Run(string[] args)
    {
        var dir = args.Length > 0 ? args[0] : "samples/models/tiny-llama";
        TorchRuntime.Initialize("cpu");
        Directory.CreateDirectory(dir);
        var config = new
        {
            architectures = new[] { "LlamaForCausalLM" }, model_type = "llama", vocab_size = 320, hidden_size = 128,
            intermediate_size = 344, num_hidden_layers = 2, num_attention_heads = 4, num_key_value_heads = 2,
            head_dim = 32, max_position_embeddings = 512, rms_norm_eps = 1e-6, rope_theta = 10000.0,
            tie_word_embeddings = false, hidden_act = "silu", bos_token_id = 256, eos_token_id = 257,
            pad_token_id = 258, initializer_range = 0.02, torch_dtype = "float32",
        };
        File.WriteAllText(Path.Combine(dir, "config.json"), JsonSerializer.Serialize(config, new JsonSerializerOptions { WriteIndented = true }) + "\n");
        using var model = new LlamaForCausalLM((LlamaConfig)ModelConfigLoader.Load(dir));
        using var generator = new Generator(20261122);
        model.InitializeWeights(generator);
        using (no_grad())
            SafeTensorsWriter.WriteCheckpoint(dir, model.named_parameters().Select(p => KeyValuePair.Create(p.name, (Tensor)p.parameter)));
        Console.WriteLine($"wrote {dir}: {model.parameters().Sum(p => p.numel()):N0} parameters");
        return 0;
    }
}
