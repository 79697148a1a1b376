using System.Text.Json;
using Lora.Peft;
using Lora.SafeTensors;
using Lora.Tuners.Bottleneck;
using TorchSharp;
using static Lora.Cli.Tests.CliFixtures;

namespace Lora.Cli.Tests;

/// <summary>The prompt-learning methods and bottleneck adapters from the command line: <c>lora train --method
/// prefix|ptuning-v2|prompt|ptuning|adapter</c>, and eval / generate / inspect / merge with their adapters.</summary>
public sealed class MethodCommandsTests
{
    private static string AlpacaFile()
    {
        var records = new[] { ("sky", "blue"), ("grass", "green"), ("snow", "white"), ("coal", "black"), ("blood", "red"), ("sun", "yellow") }
            .Select(p => new { instruction = $"Color of {p.Item1}?", input = "", output = p.Item2 });
        var path = Path.Combine(TempDirectory(), "colors.json");
        File.WriteAllText(path, JsonSerializer.Serialize(records));
        return path;
    }

    private static List<double> Losses(string outDir) =>
        File.ReadAllLines(Path.Combine(outDir, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement)
            .Where(r => r.TryGetProperty("loss", out _)).Select(r => r.GetProperty("loss").GetDouble()).ToList();

    [Theory]
    [InlineData("prefix", "PREFIX_TUNING", "0.03", "--virtual-tokens", "6")]
    [InlineData("ptuning-v2", "PREFIX_TUNING", "0.03", "--virtual-tokens", "6")]
    [InlineData("prompt", "PROMPT_TUNING", "0.1", "--prompt-init-text", "Color")]
    [InlineData("ptuning", "P_TUNING", "0.03", "--encoder-hidden-size", "32")]
    [InlineData("adapter", null, "0.01", "--placement", "houlsby")]
    public void Each_method_trains_from_the_command_line_and_eval_loads_it(string method, string? peftType, string lr, string option, string value)
    {
        var model = ModelWithTokenizer("llama_qv");
        var data = AlpacaFile();
        var outDir = Path.Combine(TempDirectory(), method);
        var (code, stdout, stderr) = Run("train", "--model", model, "--data", data, "--out", outDir, "--device", "cpu", "--batch-size", "6",
            "--method", method, option, value, "--learning-rate", lr, "--scheduler", "constant", "--max-steps", "8", "--logging-steps", "2", "--save-steps", "0");
        Assert.True(code == 0, stderr);
        Assert.Contains("trainable params: ", stdout, StringComparison.Ordinal);
        // The closing "adapter:" line names every adapter file written, the prompt encoder's too.
        var adapterLine = stdout.Split('\n').Single(l => l.StartsWith("adapter: ", StringComparison.Ordinal));
        Assert.Equal(File.Exists(Path.Combine(outDir, PromptLearningFiles.EncoderStateFileName)), adapterLine.Contains(PromptLearningFiles.EncoderStateFileName, StringComparison.Ordinal));
        var losses = Losses(outDir);
        Assert.True(losses[^1] < losses[0], $"{method}: {string.Join(", ", losses)}");

        var config = PeftConfigFile.Read(outDir);
        if (peftType is null)
        {
            Assert.True(((BottleneckConfig)config).MhAdapter);
            Assert.True(File.Exists(Path.Combine(outDir, AdapterHubFormat.WeightsFileName)));
        }
        else
        {
            Assert.Equal(peftType, config.PeftType);
            using var weights = SafeTensorsFile.Open(Path.Combine(outDir, PeftAdapter.WeightsFileName));
            Assert.Equal(["prompt_embeddings"], weights.Tensors.Keys);
        }

        (code, stdout, stderr) = Run("eval", "--model", model, "--adapter", outDir, "--data", data, "--json", "--device", "cpu");
        Assert.True(code == 0, stderr);
        Assert.True(JsonDocument.Parse(stdout).RootElement.GetProperty("loss").GetDouble() > 0);
    }

    [Fact]
    public void A_p_tuning_run_resumes_exactly_from_its_checkpoint()
    {
        var model = ModelWithTokenizer("llama_qv");
        var data = AlpacaFile();
        var outDir = Path.Combine(TempDirectory(), "ptuning");
        string[] args = ["train", "--model", model, "--data", data, "--out", outDir, "--device", "cpu", "--batch-size", "3", "--method", "ptuning",
            "--virtual-tokens", "4", "--learning-rate", "0.03", "--max-steps", "6", "--logging-steps", "1", "--save-steps", "3"];
        var (code, _, stderr) = Run(args);
        Assert.True(code == 0, stderr);
        Assert.True(File.Exists(Path.Combine(outDir, "checkpoint-3", PromptLearningFiles.EncoderStateFileName)));
        var straight = Losses(outDir);
        var adapter = File.ReadAllBytes(Path.Combine(outDir, PeftAdapter.WeightsFileName));

        Directory.Delete(Path.Combine(outDir, "checkpoint-6"), recursive: true);
        File.Delete(Path.Combine(outDir, PeftAdapter.WeightsFileName));
        (code, var stdout, stderr) = Run([.. args, "--resume"]);
        Assert.True(code == 0, stderr);
        Assert.Contains("resumed from", stdout, StringComparison.Ordinal);
        Assert.Equal(straight, Losses(outDir));
        Assert.Equal(adapter, File.ReadAllBytes(Path.Combine(outDir, PeftAdapter.WeightsFileName)));
    }

    [Fact]
    public void Eval_with_peft_prefix_and_prompt_adapters_equals_peft_loss()
    {
        var (code, stdout, stderr) = Run("eval", "--model", PeftFixture("llama_prefix", "base"), "--adapter", PeftFixture("llama_prefix", "adapter"), "--data", InputIdsJsonl("llama_prefix"), "--json");
        Assert.True(code == 0, stderr);
        var expected = ReferenceLoss("llama_prefix", "adapter_logits");
        Assert.Equal(expected, JsonDocument.Parse(stdout).RootElement.GetProperty("loss").GetDouble(), 1e-4 * expected);

        // Prompt tuning: PEFT's logits include the 3 virtual positions; with labels padded by -100 for them, the last
        // virtual position predicts the first token, so all 12 tokens of each row are in the loss.
        (code, stdout, stderr) = Run("eval", "--model", PeftFixture("llama_prompt", "base"), "--adapter", PeftFixture("llama_prompt", "adapter"), "--data", InputIdsJsonl("llama_prompt"), "--json");
        Assert.True(code == 0, stderr);
        using var file = SafeTensorsFile.Open(Path.Combine(PeftFixture("llama_prompt"), "expected.safetensors"));
        using var scope = torch.NewDisposeScope();
        var ids = file.Load("input_ids");
        var logits = file.Load("adapter_logits");
        var reference = torch.nn.functional.cross_entropy(logits[.., 2..^1, ..].reshape(-1, 300), ids.reshape(-1)).item<float>();
        var json = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal(reference, json.GetProperty("loss").GetDouble(), 1e-4 * reference);
        Assert.Equal(24, json.GetProperty("tokens").GetInt64());
    }

    [Fact]
    public void Inspect_shows_what_a_method_adds()
    {
        var (code, stdout, stderr) = Run("inspect", "--model", PeftFixture("llama_qv", "base"), "--method", "ptuning-v2", "--virtual-tokens", "4", "--json");
        Assert.True(code == 0, stderr);
        var json = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal(4 * 2 * 2 * 32, json.GetProperty("trainable_params").GetInt64());
        Assert.Contains("4 key/value prefix positions in each of 2 layers (2 kv heads × 16)", json.GetProperty("adds")[0].GetString(), StringComparison.Ordinal);

        (code, stdout, stderr) = Run("inspect", "--model", PeftFixture("llama_qv", "base"), "--method", "adapter", "--adapter-size", "8", "--placement", "houlsby");
        Assert.True(code == 0, stderr);
        Assert.Contains("adds: bottleneck adapter: 4 slot(s) (attention_adapters, output_adapters), 64 → 8 → 64, swish", stdout, StringComparison.Ordinal);

        (code, stdout, stderr) = Run("inspect", "--model", PeftFixture("llama_prompt", "base"), "--adapter", PeftFixture("llama_prompt", "adapter"));
        Assert.True(code == 0, stderr);
        Assert.Contains("adds: prompt tuning: 3 virtual token embeddings (64 wide) before the input", stdout, StringComparison.Ordinal);
        Assert.Contains("trainable params: 192 || all params: ", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Generate_runs_with_a_prompt_tuning_adapter_and_merge_refuses_it()
    {
        var model = ModelWithTokenizer("llama_prompt");
        var (code, stdout, stderr) = Run("generate", "--model", model, "--adapter", PeftFixture("llama_prompt", "adapter"), "--prompt", "Hello", "--max-new-tokens", "6", "--json");
        Assert.True(code == 0, stderr);
        Assert.Equal(6, JsonDocument.Parse(stdout).RootElement.GetProperty("tokens").GetArrayLength());

        (code, _, stderr) = Run("merge", "--model", PeftFixture("llama_prefix", "base"), "--adapter", PeftFixture("llama_prefix", "adapter"), "--out", Path.Combine(TempDirectory(), "merged"));
        Assert.Equal(1, code);
        Assert.Contains("cannot be merged", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal);
    }

    public static TheoryData<string[], string> BadInputs => new()
    {
        { ["--method", "prompt", "--targets", "q_proj"], "drop --targets" },
        { ["--virtual-tokens", "4"], "--virtual-tokens is an option of --method prefix, ptuning-v2, prompt or ptuning" },
        { ["--method", "prefix", "--packing"], "without --packing" },
        { ["--method", "ptuning-v2", "--gradient-checkpointing"], "does not work with --gradient-checkpointing" },
        { ["--method", "adapter", "--adapter-size", "8", "--reduction-factor", "4"], "--adapter-size and --reduction-factor conflict" },
        { ["--method", "ptuning", "--encoder-layers", "3"], "apply to --encoder-type lstm" },
        { ["--method", "adapter", "--placement", "middle"], "--placement 'middle'" },
        { ["--method", "prompt", "--r", "4"], "--method prompt has no rank" },
        { ["--method", "adapter", "--adapter-size", "100"], "size must be in 1..64" },
    };

    [Theory]
    [MemberData(nameof(BadInputs))]
    public void Bad_method_input_is_one_error_line(string[] extra, string expected)
    {
        var (code, stdout, stderr) = Run(["train", "--model", ModelWithTokenizer("llama_qv"), "--data", AlpacaFile(), "--out", Path.Combine(TempDirectory(), "run"), "--device", "cpu", "--max-steps", "1", .. extra]);
        Assert.Equal(1, code);
        Assert.Equal(string.Empty, stdout);
        var lines = stderr.TrimEnd('\n').Split('\n');
        Assert.Single(lines);
        Assert.StartsWith("error: ", lines[0], StringComparison.Ordinal);
        Assert.Contains(expected, lines[0], StringComparison.Ordinal);
    }
}
