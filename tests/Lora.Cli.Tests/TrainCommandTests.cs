using System.Text.Json;
using Lora.Peft;
using Lora.Tuners.LoRA;
using Lora.SafeTensors;
using static Lora.Cli.Tests.CliFixtures;

namespace Lora.Cli.Tests;

/// <summary><c>lora train</c> end to end on a fixture model with the byte-level tokenizer.</summary>
public sealed class TrainCommandTests
{
    /// <summary>A learnable task: six Alpaca records whose answers the model can memorise.</summary>
    private static string AlpacaFile(string? dir = null)
    {
        var records = new[] { ("sky", "blue"), ("grass", "green"), ("snow", "white"), ("coal", "black"), ("blood", "red"), ("sun", "yellow") }
            .Select(p => new { instruction = $"Color of {p.Item1}?", input = "", output = p.Item2 });
        var path = Path.Combine(dir ?? TempDirectory(), "colors.json");
        File.WriteAllText(path, JsonSerializer.Serialize(records));
        return path;
    }

    private static string[] Common(string model, string data, string outDir) =>
        ["train", "--model", model, "--data", data, "--out", outDir, "--device", "cpu", "--batch-size", "3", "--learning-rate", "1e-2", "--targets", "all-linear"];

    private static List<JsonElement> Metrics(string outDir) =>
        File.ReadAllLines(Path.Combine(outDir, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).ToList();

    [Fact]
    public void A_second_run_into_the_same_directory_needs_overwrite_and_the_summary_loss_is_a_logged_row()
    {
        var model = ModelWithTokenizer("llama_qv");
        var data = AlpacaFile();
        var outDir = Path.Combine(TempDirectory(), "run");
        string[] args = [.. Common(model, data, outDir), "--max-steps", "4", "--logging-steps", "2", "--save-steps", "0"];
        var (code, stdout, stderr) = Run(args);
        Assert.True(code == 0, stderr);
        var lastRow = Metrics(outDir).Last(r => r.TryGetProperty("loss", out _)).GetProperty("loss").GetDouble();
        Assert.Contains($"train loss {lastRow.ToString("F4", System.Globalization.CultureInfo.InvariantCulture)} (mean of steps 3-4, the last train row of metrics.jsonl)", stdout, StringComparison.Ordinal);

        (code, stdout, stderr) = Run(args);
        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        Assert.StartsWith($"error: {outDir}: the output directory is not empty", stderr, StringComparison.Ordinal);

        (code, _, stderr) = Run([.. args, "--overwrite"]);
        Assert.True(code == 0, stderr);
        Assert.True(File.Exists(Path.Combine(outDir, "metrics.jsonl")));
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(outDir, "runs"), "events.out.tfevents.*", SearchOption.AllDirectories));

        // --report-to: TensorBoard only (the previous run's metrics.jsonl is not left behind), then neither.
        (code, stdout, stderr) = Run([.. args, "--overwrite", "--report-to", "tensorboard"]);
        Assert.True(code == 0, stderr);
        Assert.False(File.Exists(Path.Combine(outDir, "metrics.jsonl")));
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(outDir, "runs"), "events.out.tfevents.*", SearchOption.AllDirectories));
        Assert.Contains("metrics: not written (--report-to)", stdout, StringComparison.Ordinal);

        (code, stdout, stderr) = Run([.. args, "--overwrite", "--report-to", "none", "--json"]);
        Assert.True(code == 0, stderr);
        Assert.False(File.Exists(Path.Combine(outDir, "metrics.jsonl")));
        Assert.False(Directory.Exists(Path.Combine(outDir, "runs")));
        using var json = JsonDocument.Parse(stdout);
        Assert.Equal(JsonValueKind.Null, json.RootElement.GetProperty("metrics").ValueKind);
        Assert.Equal(JsonValueKind.Null, json.RootElement.GetProperty("tensorboard").ValueKind);
        Assert.True(File.Exists(Path.Combine(outDir, "loss.svg")));

        (code, _, stderr) = Run([.. args, "--overwrite", "--report-to", "jsonl"]);
        Assert.True(code == 0, stderr);
        Assert.True(File.Exists(Path.Combine(outDir, "metrics.jsonl")));
        Assert.False(Directory.Exists(Path.Combine(outDir, "runs")));
    }

    [Fact]
    public void Trains_and_writes_a_peft_adapter_checkpoints_metrics_and_a_loss_curve()
    {
        var model = ModelWithTokenizer("llama_qv");
        var data = AlpacaFile();
        var outDir = Path.Combine(TempDirectory(), "run");
        var (code, stdout, stderr) = Run([.. Common(model, data, outDir), "--eval-data", data, "--max-steps", "16", "--logging-steps", "2",
            "--eval-steps", "4", "--save-steps", "4", "--save-total-limit", "2", "--warmup-steps", "2", "--json"]);
        Assert.True(code == 0, stderr);

        // --json: one object on stdout, nothing else.
        Assert.Single(stdout.TrimEnd('\n').Split('\n'));
        var json = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal(16, json.GetProperty("steps").GetInt32());
        Assert.True(double.IsFinite(json.GetProperty("final_loss").GetDouble()));
        Assert.True(json.GetProperty("eval_loss").GetDouble() > 0);
        Assert.Equal(Path.GetFullPath(outDir), json.GetProperty("output_dir").GetString());
        Assert.Single(Directory.GetFiles(json.GetProperty("tensorboard").GetString()!, "events.out.tfevents.*"));

        // PEFT-readable adapter: config + F32 safetensors under base_model.model.* keys.
        var config = PeftConfigFile.Read<LoraConfig>(outDir);
        Assert.Equal(8, config.R);
        Assert.Equal(16, config.LoraAlpha);
        Assert.True(config.TargetModules!.IsPeftForm);
        using (var weights = SafeTensorsFile.Open(Path.Combine(outDir, PeftAdapter.WeightsFileName)))
        {
            Assert.NotEmpty(weights.Tensors);
            Assert.All(weights.Tensors.Keys, k => Assert.Matches(@"^base_model\.model\..*\.lora_[AB]\.weight$", k));
            Assert.All(weights.Tensors.Values, t => Assert.Equal(SafeTensorsDType.F32, t.DType));
        }

        // Keep-last-2 checkpoints, each complete.
        Assert.Equal(["checkpoint-12", "checkpoint-16"], Directory.GetDirectories(outDir, "checkpoint-*").Select(Path.GetFileName).Order());
        foreach (var f in new[] { "adapter_config.json", "adapter_model.safetensors", "optimizer.bin", "scheduler.json", "rng_state.bin", "trainer_state.json" })
            Assert.True(File.Exists(Path.Combine(outDir, "checkpoint-16", f)), f);

        // metrics.jsonl: train rows every 2 steps, eval rows every 4 and at step 0 (--eval-on-start is on with eval data).
        var rows = Metrics(outDir);
        var train = rows.Where(r => r.TryGetProperty("loss", out _)).ToList();
        var eval = rows.Where(r => r.TryGetProperty("eval_loss", out _)).ToList();
        Assert.Equal([2, 4, 6, 8, 10, 12, 14, 16], train.Select(r => r.GetProperty("step").GetInt32()));
        foreach (var r in train)
        {
            foreach (var key in new[] { "step", "loss", "lr", "grad_norm", "tokens_per_s", "epoch" })
                Assert.True(r.TryGetProperty(key, out _), key);
        }

        Assert.Equal([0, 4, 8, 12, 16], eval.Select(r => r.GetProperty("step").GetInt32()));
        Assert.Equal(train[^1].GetProperty("loss").GetDouble(), json.GetProperty("train_loss").GetDouble()); // the loss the summary prints
        Assert.All(eval, r => Assert.Equal(Math.Exp(r.GetProperty("eval_loss").GetDouble()), r.GetProperty("eval_perplexity").GetDouble(), 1e-9));
        // A learnable task: eval loss falls.
        Assert.True(eval[^1].GetProperty("eval_loss").GetDouble() < eval[0].GetProperty("eval_loss").GetDouble() - 0.1,
            string.Join(", ", eval.Select(r => r.GetProperty("eval_loss").GetDouble())));
        // lr at step 2 = lr·λ(1) with 2 warmup steps = 5e-3.
        Assert.Equal(5e-3, train[0].GetProperty("lr").GetDouble(), 12);

        var svg = File.ReadAllText(Path.Combine(outDir, "loss.svg"));
        Assert.StartsWith("<svg", svg);
        Assert.Contains("id=\"train-loss\"", svg);
        Assert.Contains("id=\"eval-loss\"", svg);
        Assert.Contains(">step</text>", svg);
        Assert.Contains(">loss</text>", svg);
    }

    [Fact]
    public void Resume_continues_with_the_same_losses()
    {
        var model = ModelWithTokenizer("llama_qv");
        var data = AlpacaFile();
        var outDir = Path.Combine(TempDirectory(), "run");
        string[] args = [.. Common(model, data, outDir), "--max-steps", "6", "--logging-steps", "1", "--save-steps", "3", "--lora-dropout", "0.1"];
        var (code, stdout, stderr) = Run(args);
        Assert.True(code == 0, stderr);
        Assert.Contains("done: 6 steps", stdout);
        var straight = Metrics(outDir).Select(r => r.GetProperty("loss").GetDouble()).ToList();
        byte[] straightAdapter = File.ReadAllBytes(Path.Combine(outDir, PeftAdapter.WeightsFileName));

        // As if the run had died after checkpoint-3: resume from the latest checkpoint in --out.
        Directory.Delete(Path.Combine(outDir, "checkpoint-6"), recursive: true);
        File.Delete(Path.Combine(outDir, PeftAdapter.WeightsFileName));
        (code, stdout, stderr) = Run([.. args, "--resume"]);
        Assert.True(code == 0, stderr);
        Assert.Contains("resumed from", stdout);
        Assert.Equal(straight, Metrics(outDir).Select(r => r.GetProperty("loss").GetDouble()));
        Assert.Equal(straightAdapter, File.ReadAllBytes(Path.Combine(outDir, PeftAdapter.WeightsFileName)));
    }

    [Fact]
    public void Init_adapter_supplies_the_adapter_shape()
    {
        var model = ModelWithTokenizer("llama_qv");
        var data = AlpacaFile();
        var outDir = Path.Combine(TempDirectory(), "run");
        var (code, _, stderr) = Run(["train", "--model", model, "--data", data, "--out", outDir, "--device", "cpu", "--init-adapter", PeftFixture("llama_qv", "adapter"),
            "--max-steps", "2", "--save-steps", "0", "--packing", "--max-length", "256", "--gradient-checkpointing"]);
        Assert.True(code == 0, stderr);
        Assert.Equal(["q_proj", "v_proj"], PeftConfigFile.Read<LoraConfig>(outDir).TargetModules!.Names!.Order());
        Assert.Empty(Directory.GetDirectories(outDir, "checkpoint-*"));
    }

    [Theory]
    [InlineData("q_proj,v_projj", "v_projj")]
    [InlineData("q_proj|v_projj", "v_projj")]
    public void A_misspelt_target_next_to_a_valid_one_is_a_warning_naming_it(string targets, string misspelt)
    {
        var outDir = Path.Combine(TempDirectory(), "run");
        var (code, _, stderr) = Run(["train", "--model", ModelWithTokenizer("llama_qv"), "--data", AlpacaFile(), "--out", outDir, "--device", "cpu",
            "--targets", targets, "--max-steps", "1", "--save-steps", "0"]);
        Assert.True(code == 0, stderr);
        Assert.Contains($"warning: --targets: '{misspelt}' selects no layer of this model, so it adapts nothing (adapted: q_proj); check its spelling.", stderr, StringComparison.Ordinal);
    }

    public static TheoryData<string[], string> BadInputs => new()
    {
        { ["--epochs", "2"], "--epochs and --max-steps" },
        { ["--warmup-steps", "2", "--warmup-ratio", "0.1"], "--warmup-steps and --warmup-ratio" },
        { ["--bf16", "--dtype", "fp32"], "contradict" },
        { ["--dtype", "fp16"], "fp16 training would need loss scaling" },
        { ["--scheduler", "polynomial"], "scheduler 'polynomial'" },
        { ["--init-adapter", "ADAPTER", "--r", "4"], "--init-adapter takes the method" },
        { ["--eval-steps", "5"], "--eval-steps needs --eval-data" },
        { ["--report-to", "wandb"], "--report-to 'wandb' is not one of tensorboard, jsonl, all, none." },
        { ["--report-to", "none,jsonl"], "--report-to none cannot be combined" },
        { ["--learning-rate", "-1"], "learning rate" },
        { ["--targets", "nothing_here"], "matches no linear layer" },
        { ["--resume"], "no checkpoint" },
        { ["--max-length", "8"], "no examples left" },
        { ["--method", "ia3", "--r", "4"], "--method ia3 has no rank" },
        { ["--feedforward", "down_proj"], "--feedforward is an IA3 option" },
        { ["--method", "bitfit"], "--method 'bitfit' is not one of lora, dora, ia3, prefix, ptuning-v2, prompt, ptuning, adapter" },
        { ["--mode", "full", "--method", "ia3"], "drop the adapter options" },
        { ["--method", "ia3", "--targets", "k_proj", "--feedforward", "down_proj"], "not among the targets" },
        { ["--method", "ia3", "--targets", "k_proj,v_proj", "--feedforward", "down_proj,v_proj"], "subset of target_modules" },
    };

    [Fact]
    public void Method_ia3_trains_and_writes_a_peft_ia3_adapter_that_eval_loads()
    {
        var model = ModelWithTokenizer("llama_ia3");
        var data = AlpacaFile();
        var outDir = Path.Combine(TempDirectory(), "ia3");
        var (code, stdout, stderr) = Run("train", "--model", model, "--data", data, "--out", outDir, "--device", "cpu", "--batch-size", "3",
            "--method", "ia3", "--learning-rate", "0.1", "--max-steps", "12", "--logging-steps", "4", "--save-steps", "0", "--eval-data", data, "--eval-steps", "4");
        Assert.True(code == 0, stderr);
        Assert.Contains("trainable params: 384 || all params: ", stdout, StringComparison.Ordinal);

        // PEFT's defaults for Llama (k_proj, v_proj, down_proj; down_proj feed-forward), in PEFT's IA3 format.
        var config = PeftConfigFile.Read<Lora.Tuners.IA3.Ia3Config>(outDir);
        Assert.Equal(["down_proj", "k_proj", "v_proj"], config.TargetModules!.Names!.Order());
        Assert.Equal(["down_proj"], config.FeedforwardModules!.Names);
        using (var weights = SafeTensorsFile.Open(Path.Combine(outDir, PeftAdapter.WeightsFileName)))
            Assert.All(weights.Tensors.Keys, k => Assert.Matches(@"^base_model\.model\.model\.layers\.\d\.(self_attn\.(k|v)_proj|mlp\.down_proj)\.ia3_l$", k));

        var eval = Metrics(outDir).Where(r => r.TryGetProperty("eval_loss", out _)).Select(r => r.GetProperty("eval_loss").GetDouble()).ToList();
        Assert.True(eval[^1] < eval[0], string.Join(", ", eval));

        (code, stdout, stderr) = Run("eval", "--model", model, "--adapter", outDir, "--data", data, "--json", "--device", "cpu");
        Assert.True(code == 0, stderr);
        Assert.Equal(eval[^1], JsonDocument.Parse(stdout).RootElement.GetProperty("loss").GetDouble(), 1e-5);
    }

    [Fact]
    public void Pre_tokenised_data_trains_without_a_tokenizer()
    {
        var model = PeftFixture("llama_qv", "base");
        Assert.False(File.Exists(Path.Combine(model, "tokenizer.json")));
        var outDir = Path.Combine(TempDirectory(), "ids");
        var (code, stdout, stderr) = Run("train", "--model", model, "--data", InputIdsJsonl("llama_qv"), "--out", outDir, "--device", "cpu",
            "--max-steps", "2", "--save-steps", "0", "--batch-size", "2");
        Assert.True(code == 0, stderr);
        Assert.Contains("2 pre-tokenised examples, 32 tokens (30 in the loss)", stdout, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(outDir, PeftAdapter.WeightsFileName)));
    }

    [Theory]
    [MemberData(nameof(BadInputs))]
    public void Bad_input_is_one_error_line(string[] extra, string expected)
    {
        var model = ModelWithTokenizer("llama_qv");
        var data = AlpacaFile();
        extra = extra.Select(a => a == "ADAPTER" ? PeftFixture("llama_qv", "adapter") : a).ToArray();
        var (code, stdout, stderr) = Run(["train", "--model", model, "--data", data, "--out", Path.Combine(TempDirectory(), "run"), "--device", "cpu", "--max-steps", "1", .. extra]);
        Assert.Equal(1, code);
        Assert.Equal(string.Empty, stdout);
        var lines = stderr.TrimEnd('\n').Split('\n');
        Assert.Single(lines);
        Assert.StartsWith("error: ", lines[0]);
        Assert.Contains(expected, lines[0]);
        Assert.DoesNotContain("   at ", stderr);
    }

    [Fact]
    public void Bad_data_files_name_the_file()
    {
        var model = ModelWithTokenizer("llama_qv");
        var dir = TempDirectory();
        var empty = Path.Combine(dir, "empty.json");
        File.WriteAllText(empty, "[]");
        var broken = Path.Combine(dir, "broken.jsonl");
        File.WriteAllText(broken, "{\"instruction\": \"a\", \"output\": \"b\"}\n{\"instruction\": 3}\n");
        foreach (var (file, fragment) in new[] { (empty, "empty.json"), (broken, "broken.jsonl"), (Path.Combine(dir, "missing.json"), "missing.json") })
        {
            var (code, stdout, stderr) = Run("train", "--model", model, "--data", file, "--out", Path.Combine(dir, "out"), "--device", "cpu", "--max-steps", "1");
            Assert.Equal(1, code);
            Assert.Equal(string.Empty, stdout);
            Assert.StartsWith("error: ", stderr);
            Assert.Contains(fragment, stderr);
            Assert.Single(stderr.TrimEnd('\n').Split('\n'));
        }
    }
}
