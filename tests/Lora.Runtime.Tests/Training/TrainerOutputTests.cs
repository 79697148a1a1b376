using System.Text;
using Lora.Data;
using Lora.Models;
using Lora.Peft;
using Lora.Training;
using Lora.Tuners.LoRA;
using TorchSharp;

namespace Lora.Runtime.Tests.Training;

/// <summary>What a run does to its output directory and log: eval at step 0, refusing a used directory, cleaning up
/// after an interrupted save, TensorBoard events.</summary>
[Collection(TrainerCollection.Name)]
public class TrainerOutputTests
{
    private static List<TokenizedExample> Data() =>
        TrainerFixtures.Examples(TrainerFixtures.TrainTrace("batch.safetensors"), labelsFromFile: true);

    private static (CausalLM Model, LoraConfig Config) Model()
    {
        var model = CausalLM.FromPretrained(TrainerFixtures.TrainTrace("base"));
        var config = new LoraConfig { R = 4, LoraAlpha = 8, TargetModules = TargetModules.FromNames(["q_proj", "v_proj"]) };
        torch.manual_seed(3);
        PeftInjector.Inject(model, config);
        return (model, config);
    }

    private static TrainingOptions Options => new() { LearningRate = 5e-3, MaxSteps = 2, BatchSize = 2, LoggingSteps = 1, SaveSteps = 1, Seed = 5 };

    private static TrainingResult Train(string dir, TrainingOptions options, Action<Trainer>? setup = null, string? resumeFrom = null)
    {
        var (model, config) = Model();
        using (model)
        using (var trainer = new Trainer(model, options, dir, Data(), Data(), config))
        {
            setup?.Invoke(trainer);
            return trainer.Train(resumeFrom);
        }
    }

    [Fact]
    public void Eval_on_start_logs_the_untrained_eval_loss_at_step_0()
    {
        var result = Train(Fixtures.TempDirectory(), Options with { EvalOnStart = true, EvalSteps = 0 });
        var evals = result.LogHistory.Where(e => e.IsEval).ToList();
        Assert.Equal([0, 2], evals.Select(e => e.Step));
        Assert.True(evals[0].EvalLoss > evals[1].EvalLoss);
        var state = TrainerState.Read(Path.Combine(result.OutputDirectory, TrainerState.FileName));
        Assert.Equal(2, state.BestGlobalStep); // step 0 has no checkpoint to be the best one

        var without = Train(Fixtures.TempDirectory(), Options with { EvalSteps = 0 });
        Assert.Equal([2], without.LogHistory.Where(e => e.IsEval).Select(e => e.Step));
    }

    [Fact]
    public void A_fresh_run_refuses_a_used_output_directory_unless_told_to_overwrite()
    {
        var dir = Fixtures.TempDirectory();
        Train(dir, Options);
        var error = Assert.Throws<LoraException>(() => Train(dir, Options));
        Assert.Contains("not empty", error.Message, StringComparison.Ordinal);
        Assert.Contains("--overwrite", error.Message, StringComparison.Ordinal);

        Directory.CreateDirectory(Path.Combine(dir, "checkpoint-7"));
        File.WriteAllText(Path.Combine(dir, "checkpoint-7", TrainerState.FileName), "{}");
        Directory.CreateDirectory(Path.Combine(dir, TensorBoardLogger.DefaultDirectoryName));
        var result = Train(dir, Options with { OverwriteOutputDirectory = true, SaveSteps = 2 });
        Assert.Equal(["checkpoint-2"], TrainingCheckpoints.List(dir).Select(c => Path.GetFileName(c.Path)));
        Assert.False(Directory.Exists(Path.Combine(dir, TensorBoardLogger.DefaultDirectoryName)));
        Assert.Equal(2, result.GlobalStep);
    }

    [Fact]
    public void Resuming_removes_the_staging_directory_of_an_interrupted_save()
    {
        var dir = Fixtures.TempDirectory();
        Train(dir, Options with { MaxSteps = 1 });
        var stale = Path.Combine(dir, $".checkpoint-2.tmp-{Guid.NewGuid():N}");
        Directory.CreateDirectory(stale);
        File.WriteAllText(Path.Combine(stale, "optimizer.bin"), "half written");
        var messages = new List<string>();
        Train(dir, Options, t => t.Message += messages.Add, resumeFrom: TrainingCheckpoints.Latest(dir));
        Assert.False(Directory.Exists(stale));
        Assert.Contains(messages, m => m.Contains(stale, StringComparison.Ordinal) && m.Contains("interrupted", StringComparison.Ordinal));
        Assert.Empty(Directory.GetDirectories(dir, ".checkpoint-*"));
    }

    [Fact]
    public void TensorBoard_logger_writes_the_log_rows_as_scalar_events()
    {
        var dir = Fixtures.TempDirectory();
        var logDir = Path.Combine(dir, TensorBoardLogger.DefaultDirectoryName);
        Train(dir, Options with { EvalOnStart = true }, t => new TensorBoardLogger(logDir).Attach(t));
        var events = Assert.Single(Directory.GetFiles(logDir, "events.out.tfevents.*"));
        var bytes = File.ReadAllBytes(events);
        foreach (var tag in new[] { "train/loss", "train/learning_rate", "train/grad_norm", "eval/loss", "eval/perplexity" })
            Assert.True(Contains(bytes, Encoding.UTF8.GetBytes(tag)), tag);
    }

    private static bool Contains(byte[] haystack, byte[] needle) => haystack.AsSpan().IndexOf(needle) >= 0;
}
