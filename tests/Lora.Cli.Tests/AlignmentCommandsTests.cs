using System.Text.Json;
using Lora.Peft;
using static Lora.Cli.Tests.CliFixtures;

namespace Lora.Cli.Tests;

/// <summary>
/// <c>lora reward</c>, <c>score</c>, <c>dpo</c>, <c>grpo</c> and <c>ppo</c> end to end on a fixture model with the
/// byte-level tokenizer: a few steps each (the objectives' numbers are checked against TRL in the runtime tests).
/// </summary>
public sealed class AlignmentCommandsTests
{
    private static readonly (string Thing, string Color, string Wrong)[] Colors =
        [("sky", "blue", "red"), ("grass", "green", "black"), ("snow", "white", "pink"), ("coal", "black", "white")];

    private static string Pairs(string dir)
    {
        var path = Path.Combine(dir, "pairs.jsonl");
        File.WriteAllLines(path, Colors.Select(c => JsonSerializer.Serialize(new { prompt = $"Color of {c.Thing}? ", chosen = c.Color, rejected = c.Wrong })));
        return path;
    }

    private static string Prompts(string dir)
    {
        var path = Path.Combine(dir, "prompts.jsonl");
        File.WriteAllLines(path, Colors.Select(c => JsonSerializer.Serialize(new { prompt = $"Color of {c.Thing}? ", answer = c.Color })));
        return path;
    }

    private static List<JsonElement> Metrics(string outDir) =>
        File.ReadAllLines(Path.Combine(outDir, "metrics.jsonl")).Select(l => JsonDocument.Parse(l).RootElement).ToList();

    private static string[] Ppo(string model, string data, string outDir) =>
        ["ppo", "--model", model, "--data", data, "--out", outDir, "--device", "cpu", "--batch-size", "2", "--grad-accum", "2", "--response-length", "4",
            "--learning-rate", "1e-3", "--logging-steps", "1", "--targets", "all-linear"];

    [Fact]
    public void Reward_model_scores_and_drives_ppo_with_a_value_head()
    {
        var dir = TempDirectory();
        var model = ModelWithTokenizer("llama_qv");
        var pairs = Pairs(dir);
        var rm = Path.Combine(dir, "rm");
        var (code, stdout, stderr) = Run("reward", "--model", model, "--data", pairs, "--out", rm, "--device", "cpu", "--batch-size", "4", "--max-steps", "2",
            "--logging-steps", "1", "--save-steps", "0", "--json");
        Assert.True(code == 0, stderr);
        var json = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal(4, json.GetProperty("pairs").GetInt32());
        Assert.True(json.GetProperty("train_metrics").TryGetProperty("accuracy", out _));
        Assert.Contains("\"task_type\": \"SEQ_CLS\"", File.ReadAllText(Path.Combine(rm, PeftConfigFile.FileName)));

        (code, stdout, stderr) = Run("score", "--model", model, "--adapter", rm, "--data", pairs, "--device", "cpu", "--json");
        Assert.True(code == 0, stderr);
        Assert.Contains("accuracy", stdout);

        var outDir = Path.Combine(dir, "ppo");
        (code, stdout, stderr) = Run([.. Ppo(model, Prompts(dir), outDir), "--reward-model", rm, "--num-ppo-epochs", "2", "--num-mini-batches", "2",
            "--max-steps", "4", "--save-steps", "0", "--json"]);
        Assert.True(code == 0, stderr);
        json = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal(4, json.GetProperty("steps").GetInt32());
        Assert.True(File.Exists(json.GetProperty("value_head").GetString()));
        Assert.True(File.Exists(Path.Combine(outDir, PeftAdapter.WeightsFileName)));
        // The critic (--critic separate, the default) is its own PEFT adapter beside the policy's, which holds none of it;
        // started from the reward model (TRL's PPO script), it has the reward adapter's layers, without its score head.
        Assert.Equal(Path.Combine(outDir, "critic"), json.GetProperty("critic_adapter").GetString());
        Assert.True(File.Exists(Path.Combine(outDir, "critic", PeftAdapter.WeightsFileName)));
        using (var policy = Lora.SafeTensors.SafeTensorsFile.Open(Path.Combine(outDir, PeftAdapter.WeightsFileName)))
        using (var critic = Lora.SafeTensors.SafeTensorsFile.Open(Path.Combine(outDir, "critic", PeftAdapter.WeightsFileName)))
        using (var reward = Lora.SafeTensors.SafeTensorsFile.Open(Path.Combine(rm, PeftAdapter.WeightsFileName)))
        {
            Assert.Equal(reward.Tensors.Keys.Where(k => !k.Contains(".score.", StringComparison.Ordinal)).Order(), critic.Tensors.Keys.Order());
            Assert.DoesNotContain(policy.Tensors.Keys, k => k.Contains("critic", StringComparison.Ordinal));
        }

        Assert.Contains("4 per rollout, 4 steps per rollout, reward rm", stderr);
        var rows = Metrics(outDir);
        Assert.Equal([1, 2, 3, 4], rows.Select(r => r.GetProperty("step").GetInt32()));
        foreach (var key in new[] { "objective/kl", "objective/scores", "objective/rlhf_reward", "objective/non_score_reward", "objective/entropy",
                     "policy/approxkl_avg", "policy/clipfrac_avg", "loss/policy_avg", "loss/value_avg", "val/clipfrac_avg", "policy/entropy_avg", "val/ratio" })
            Assert.True(rows[0].TryGetProperty(key, out _), key);
        // The first rollout is made by the fresh adapter (B = 0): the policy is the reference, so TRL's k1 KL is 0.
        Assert.Equal(0, rows[0].GetProperty("objective/kl").GetDouble(), 6);
        // One rollout, four steps: the rollout's scores are logged unchanged while the policy moves off it.
        Assert.All(rows, r => Assert.Equal(rows[0].GetProperty("objective/scores").GetDouble(), r.GetProperty("objective/scores").GetDouble()));
        Assert.Equal(1.0, rows[0].GetProperty("val/ratio").GetDouble(), 6);
        Assert.NotEqual(1.0, rows[^1].GetProperty("val/ratio").GetDouble());
    }

    [Fact]
    public void Ppo_resumed_at_a_rollout_boundary_repeats_the_run()
    {
        var dir = TempDirectory();
        var model = ModelWithTokenizer("llama_qv");
        var outDir = Path.Combine(dir, "ppo");
        string[] args = [.. Ppo(model, Prompts(dir), outDir), "--reward-func", "starts_with_answer", "--num-ppo-epochs", "1", "--max-steps", "4", "--save-steps", "2"];
        var (code, stdout, stderr) = Run(args);
        Assert.True(code == 0, stderr);
        Assert.Contains("done: 4 steps", stdout);
        Assert.Contains($"critic adapter: {Path.Combine(outDir, "critic")}", stdout, StringComparison.Ordinal);
        Assert.Contains($"value head: {Path.Combine(outDir, "value_head.safetensors")}", stdout, StringComparison.Ordinal);
        var straight = Metrics(outDir).Select(r => r.GetProperty("loss").GetDouble()).ToList();
        var adapter = File.ReadAllBytes(Path.Combine(outDir, PeftAdapter.WeightsFileName));
        var head = File.ReadAllBytes(Path.Combine(outDir, "value_head.safetensors"));
        var critic = File.ReadAllBytes(Path.Combine(outDir, "critic", PeftAdapter.WeightsFileName));
        Assert.True(File.Exists(Path.Combine(outDir, "checkpoint-2", "value_head.safetensors")));
        Assert.True(File.Exists(Path.Combine(outDir, "checkpoint-2", "critic", PeftAdapter.WeightsFileName)));

        Directory.Delete(Path.Combine(outDir, "checkpoint-4"), recursive: true);
        File.Delete(Path.Combine(outDir, PeftAdapter.WeightsFileName));
        File.Delete(Path.Combine(outDir, "value_head.safetensors"));
        Directory.Delete(Path.Combine(outDir, "critic"), recursive: true);
        (code, stdout, stderr) = Run([.. args, "--resume"]);
        Assert.True(code == 0, stderr);
        Assert.Contains("resumed from", stdout);
        Assert.Equal(straight, Metrics(outDir).Select(r => r.GetProperty("loss").GetDouble()));
        Assert.Equal(adapter, File.ReadAllBytes(Path.Combine(outDir, PeftAdapter.WeightsFileName)));
        Assert.Equal(head, File.ReadAllBytes(Path.Combine(outDir, "value_head.safetensors")));
        Assert.Equal(critic, File.ReadAllBytes(Path.Combine(outDir, "critic", PeftAdapter.WeightsFileName)));
    }

    [Theory]
    [InlineData("--reward-func exact_answer --reward-func contains_answer", "this command takes one reward")]
    [InlineData("--reward-func exact_answer --num-mini-batches 3", "--num-mini-batches 3 must divide --grad-accum 2")]
    [InlineData("--reward-func exact_answer --kl-estimator k2", "--kl-estimator 'k2' is not one of k1, k3")]
    [InlineData("--reward-func exact_answer --stop-token nl", "--stop-token 'nl' is not eos")]
    [InlineData("--reward-func nearest", "unknown reward function 'nearest'")]
    [InlineData("--reward-model missing-rm", "missing-rm: reward model directory not found")]
    [InlineData("--reward-func exact_answer --bf16 --dtype fp32", "--bf16 and --dtype fp32 contradict")] // the shared training options
    [InlineData("--reward-func exact_answer --dtype fp16", "fp16 training would need loss scaling")]
    [InlineData("--reward-func exact_answer --critic own", "--critic 'own' is not one of separate, shared.")]
    public void Ppo_user_errors_are_named(string extra, string message)
    {
        var dir = TempDirectory();
        var (code, _, stderr) = Run([.. Ppo(ModelWithTokenizer("llama_qv"), Prompts(dir), Path.Combine(dir, "out")), "--max-steps", "1", .. extra.Split(' ')]);
        Assert.Equal(1, code);
        Assert.Contains(message, stderr);
        Assert.DoesNotContain("   at ", stderr);
    }

    [Fact]
    public void Dpo_starts_at_ln2_with_trl_metric_names()
    {
        var dir = TempDirectory();
        var pairs = Pairs(dir);
        var outDir = Path.Combine(dir, "dpo");
        string[] args = ["dpo", "--model", ModelWithTokenizer("llama_qv"), "--data", pairs, "--eval-data", pairs, "--out", outDir, "--device", "cpu",
            "--batch-size", "4", "--max-steps", "2", "--logging-steps", "1", "--save-steps", "0", "--learning-rate", "1e-2", "--json"];
        var (code, stdout, stderr) = Run(args);
        Assert.True(code == 0, stderr);
        Assert.True(Directory.Exists(JsonDocument.Parse(stdout).RootElement.GetProperty("tensorboard").GetString()));
        var rows = Metrics(outDir);
        // --eval-on-start (default with eval data, as lora train): the untrained policy is its reference, loss ln 2.
        Assert.Equal(0, rows[0].GetProperty("step").GetInt32());
        Assert.Equal(Math.Log(2), rows[0].GetProperty("eval_loss").GetDouble(), 5);
        var first = rows.First(r => r.TryGetProperty("loss", out _));
        // A new LoRA adapter (B = 0) is the reference: every pair's implicit reward margin is 0.
        Assert.Equal(Math.Log(2), first.GetProperty("loss").GetDouble(), 5);
        Assert.Equal(0, first.GetProperty("rewards/accuracies").GetDouble());
        foreach (var key in new[] { "rewards/chosen", "rewards/rejected", "rewards/margins", "logps/chosen", "logps/rejected" })
            Assert.True(first.TryGetProperty(key, out _), key);
        var eval = rows.Last(r => r.TryGetProperty("eval_loss", out _));
        Assert.True(eval.TryGetProperty("eval_rewards/margins", out var margin));
        Assert.True(margin.GetDouble() > 0, $"eval margin {margin.GetDouble()}");

        // A second fresh run into the same --out is refused before anything loads (as lora train).
        (code, _, stderr) = Run(args);
        Assert.Equal(1, code);
        Assert.Contains("the output directory is not empty", stderr);
        Assert.DoesNotContain("   at ", stderr);

        // The trainer's options are lora train's, --report-to included: neither TensorBoard nor metrics.jsonl.
        (code, stdout, stderr) = Run([.. args, "--overwrite", "--report-to", "none"]);
        Assert.True(code == 0, stderr);
        Assert.False(File.Exists(Path.Combine(outDir, "metrics.jsonl")));
        Assert.False(Directory.Exists(Path.Combine(outDir, "runs")));
        using (var json = JsonDocument.Parse(stdout))
        {
            Assert.Equal(JsonValueKind.Null, json.RootElement.GetProperty("metrics").ValueKind);
            Assert.Equal(JsonValueKind.Null, json.RootElement.GetProperty("tensorboard").ValueKind);
        }

        (code, _, stderr) = Run([.. args, "--overwrite", "--report-to", "wandb"]);
        Assert.Equal(1, code);
        Assert.Contains("--report-to 'wandb' is not one of tensorboard, jsonl, all, none.", stderr);
    }

    [Fact]
    public void Grpo_logs_trl_metrics_for_rule_rewards()
    {
        var dir = TempDirectory();
        var outDir = Path.Combine(dir, "grpo");
        var (code, stdout, stderr) = Run("grpo", "--model", ModelWithTokenizer("llama_qv"), "--data", Prompts(dir), "--out", outDir, "--device", "cpu",
            "--reward-func", "contains_answer", "--reward-func", "starts_with_answer", "--reward-weights", "1,0.5", "--num-generations", "4", "--batch-size", "4",
            "--max-completion-length", "4", "--max-steps", "2", "--logging-steps", "1", "--save-steps", "0", "--beta", "0.04");
        Assert.True(code == 0, stderr);
        Assert.Contains("rewards contains_answer×1, starts_with_answer×0.5, loss dapo, beta 0.04", stdout);
        var row = Metrics(outDir)[0];
        foreach (var key in new[] { "reward", "reward_std", "kl", "completions/mean_length", "rewards/contains_answer/mean", "rewards/starts_with_answer/mean", "clip_ratio/region_mean" })
            Assert.True(row.TryGetProperty(key, out _), key);
    }
}
