using System.Text.Json;
using Lora.Models;
using Lora.Quantization;
using Lora.SafeTensors;
using static Lora.Cli.Tests.CliFixtures;

namespace Lora.Cli.Tests;

/// <summary><c>lora quantize</c>, QLoRA training from the CLI (<c>train --quantize</c>), and merging on a quantized
/// base.</summary>
public sealed class QuantizeCommandTests
{
    private static string ColorsFile()
    {
        var records = new[] { ("sky", "blue"), ("grass", "green"), ("snow", "white"), ("coal", "black"), ("blood", "red"), ("sun", "yellow") }
            .Select(p => new { instruction = $"Color of {p.Item1}?", input = "", output = p.Item2 });
        var path = Path.Combine(TempDirectory(), "colors.json");
        File.WriteAllText(path, JsonSerializer.Serialize(records));
        return path;
    }

    [Theory]
    [InlineData("nf4", new string[0], true)]
    [InlineData("fp4", new[] { "--no-double-quant", "--blocksize", "128" }, false)]
    [InlineData("int8", new string[0], false)]
    public void Writes_a_bitsandbytes_checkpoint_that_loads_quantized(string format, string[] extra, bool doubleQuant)
    {
        var model = ModelWithTokenizer("llama_qv");
        var outDir = Path.Combine(TempDirectory(), "q");
        var (code, stdout, stderr) = Run(["quantize", "--model", model, "--format", format, .. extra, "--dtype", "fp32", "--out", outDir, "--device", "cpu", "--json"]);
        Assert.True(code == 0, stderr);
        var json = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal(14, json.GetProperty("quantized_layers").GetInt32());
        var bits = json.GetProperty("bits_per_param").GetDouble();
        // Tiny layers (64 × 64): the per-layer code tables weigh more than in a real model (docs/quantization.md).
        Assert.InRange(bits, format == "int8" ? 8 : 4, format == "int8" ? 8.6 : 5.6);

        var config = QuantizationConfig.FromModelDirectory(outDir)!;
        Assert.Equal(QuantizationTypes.Parse(format), config.Type);
        Assert.Equal(doubleQuant, config.DoubleQuant);
        using (var file = SafeTensorsCheckpoint.Open(outDir))
        {
            var key = format == "int8" ? "model.layers.0.mlp.up_proj.SCB" : $"model.layers.0.mlp.up_proj.weight.quant_state.bitsandbytes__{format}";
            Assert.True(file.Contains(key), key);
            Assert.Equal(SafeTensorsDType.F32, file.Entry("lm_head.weight").DType);
        }

        if (format == "fp4")
        {
            using var loaded = CausalLM.FromPretrained(outDir);
            Assert.Equal(128, ((Lora.Modules.Bases.FourBitLinear)ModelQuantizer.QuantizedLayers(loaded).First().Base).QuantizedWeight.Blocksize);
            Assert.Equal(128, loaded.Quantization!.Blocksize); // read from the weights: quantization_config has no block size
            using var again = CausalLM.FromPretrained(outDir, quantization: new QuantizationConfig { Type = QuantizationType.Fp4 });
            Assert.Equal(128, again.Quantization!.Blocksize);
        }

        // The tokenizer and config travel; inspect shows bits per parameter.
        Assert.True(File.Exists(Path.Combine(outDir, "tokenizer.json")));
        var (icode, inspect, ierr) = Run(["inspect", "--model", outDir]);
        Assert.True(icode == 0, ierr);
        Assert.Contains($"[{format}, ", inspect);
        Assert.Contains("bits/param (stored tensors)", inspect);
    }

    [Fact]
    public void Bad_combinations_are_refused_before_loading()
    {
        var model = ModelWithTokenizer("llama_qv");
        var outDir = Path.Combine(TempDirectory(), "q");
        var cases = new (string[] Args, string Message)[]
        {
            (["quantize", "--model", model, "--format", "int4", "--out", outDir], "--format 'int4'"),
            (["quantize", "--model", model, "--format", "int8", "--double-quant", "--out", outDir], "4-bit options"),
            (["quantize", "--model", model, "--format", "nf4", "--blocksize", "100", "--out", outDir], "blocksize 100"),
            (["quantize", "--model", model, "--format", "nf4", "--double-quant", "--no-double-quant", "--out", outDir], "conflict"),
            (["train", "--model", model, "--data", ColorsFile(), "--out", outDir, "--double-quant"], "need --quantize"),
            (["train", "--model", model, "--data", ColorsFile(), "--out", outDir, "--quantize", "nf4", "--mode", "full"], "adapter only"),
        };
        foreach (var (args, message) in cases)
        {
            var (code, _, stderr) = Run(args);
            Assert.Equal(1, code);
            Assert.Contains(message, stderr);
            Assert.DoesNotContain("   at ", stderr);
        }

        Assert.False(Directory.Exists(outDir));
    }

    [Fact]
    public void Qlora_trains_from_the_cli_and_merges_into_a_dense_or_requantized_checkpoint()
    {
        var model = ModelWithTokenizer("llama_qv");
        var data = ColorsFile();
        var outDir = Path.Combine(TempDirectory(), "qlora");
        var (code, stdout, stderr) = Run(["train", "--model", model, "--data", data, "--out", outDir, "--device", "cpu", "--batch-size", "3",
            "--learning-rate", "1e-2", "--targets", "all-linear", "--quantize", "nf4", "--double-quant", "--max-steps", "12", "--logging-steps", "4", "--save-steps", "0"]);
        Assert.True(code == 0, stderr);
        Assert.Contains("quantized nf4 (double quant, blocksize 64, compute float32): 14 linear layers", stdout);
        var losses = File.ReadAllLines(Path.Combine(outDir, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(e => e.TryGetProperty("loss", out _)).Select(e => e.GetProperty("loss").GetDouble()).ToList();
        Assert.True(losses[^1] < losses[0], $"{losses[0]} → {losses[^1]}");

        // Dense export from the same NF4 base: exact merge, reported change ~ rounding.
        var merged = Path.Combine(TempDirectory(), "merged");
        (code, stdout, stderr) = Run(["merge", "--model", model, "--adapter", outDir, "--quantize", "nf4", "--double-quant", "--out", merged, "--device", "cpu", "--json"]);
        Assert.True(code == 0, stderr);
        var json = JsonDocument.Parse(stdout).RootElement;
        Assert.True(json.GetProperty("relative_logit_change").GetDouble() < 1e-5, stdout);
        Assert.Equal(JsonValueKind.Null, json.GetProperty("quantization").ValueKind);
        Assert.Null(QuantizationConfig.FromModelDirectory(merged));

        // Re-quantized: warned, still NF4, and the rounding is measured.
        var requantized = Path.Combine(TempDirectory(), "requantized");
        (code, stdout, stderr) = Run(["merge", "--model", model, "--adapter", outDir, "--quantize", "nf4", "--double-quant", "--requantize", "--out", requantized, "--device", "cpu"]);
        Assert.True(code == 0, stderr);
        Assert.Contains("warning: merging into 14 quantized layer(s) re-quantizes", stderr);
        Assert.Contains("merged into the nf4 weights and re-quantized", stdout);
        Assert.Equal(QuantizationType.Nf4, QuantizationConfig.FromModelDirectory(requantized)!.Type);

        // The QLoRA adapter evaluates on the quantized base.
        (code, stdout, stderr) = Run(["eval", "--model", model, "--adapter", outDir, "--quantize", "nf4", "--double-quant", "--data", data, "--device", "cpu", "--json"]);
        Assert.True(code == 0, stderr);
        Assert.True(JsonDocument.Parse(stdout).RootElement.GetProperty("loss").GetDouble() > 0);
    }
}
