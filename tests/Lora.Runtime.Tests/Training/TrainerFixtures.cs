using System.Text.Json;
using Lora.Peft;
using Lora.Tuners.LoRA;
using Lora.Data;
using Lora.SafeTensors;
using Lora.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Runtime.Tests.Training;

/// <summary>Helpers shared by the trainer tests.</summary>
internal static class TrainerFixtures
{
    public static string TrainTrace(string part = "") => Path.Combine(Fixtures.Root, "trainer", "train_trace", part);

    /// <summary>Rows of a safetensors file's <c>input_ids</c> (and <c>labels</c>, or the ids again) as examples.</summary>
    public static List<TokenizedExample> Examples(string path, bool labelsFromFile)
    {
        using var file = SafeTensorsFile.Open(path);
        using var ids = file.Load("input_ids").to(ScalarType.Int64);
        using var labels = labelsFromFile ? file.Load("labels").to(ScalarType.Int64) : ids.alias();
        return Enumerable.Range(0, (int)ids.shape[0])
            .Select(r =>
            {
                using var idRow = ids[r];
                using var labelRow = labels[r];
                return new TokenizedExample(idRow.data<long>().Select(v => (int)v).ToArray(), labelRow.data<long>().Select(v => (int)v).ToArray());
            })
            .ToList();
    }

    /// <summary>The trace rows of a trace.json (<c>trace</c> array) or the <c>losses</c> list.</summary>
    public static JsonElement Json(string path) => JsonDocument.Parse(File.ReadAllText(path)).RootElement;

    /// <summary>|a − b| ≤ rtol·|b| (+ a tiny atol for values at 0).</summary>
    public static void Relative(double expected, double actual, double rtol, string what)
    {
        var bound = rtol * Math.Abs(expected) + 1e-9;
        Assert.True(Math.Abs(actual - expected) <= bound, $"{what}: expected {expected:G10}, got {actual:G10} (|diff| {Math.Abs(actual - expected):G3} > {bound:G3})");
    }

    /// <summary>Every tensor of two adapter files agrees to <c>max|a−b| ≤ rtol·max|b| + atol</c>; returns the worst relative error.</summary>
    public static double AdaptersClose(string actualDir, string expectedDir, double rtol)
    {
        using var a = SafeTensorsFile.Open(Path.Combine(actualDir, PeftAdapter.WeightsFileName));
        using var b = SafeTensorsFile.Open(Path.Combine(expectedDir, PeftAdapter.WeightsFileName));
        Assert.Equal(b.Tensors.Keys.Order(), a.Tensors.Keys.Order());
        double worst = 0;
        foreach (var key in b.Tensors.Keys)
        {
            using var scope = NewDisposeScope();
            var x = a.Load(key).to(ScalarType.Float32);
            var y = b.Load(key).to(ScalarType.Float32);
            var diff = (x - y).abs().max().item<float>();
            var scale = y.abs().max().item<float>();
            worst = Math.Max(worst, diff / scale);
            Assert.True(diff <= rtol * scale + 1e-7, $"{key}: max|a-b| {diff:G4} > {rtol} × {scale:G4}");
        }

        return worst;
    }

    /// <summary>One backward pass of <paramref name="loss"/> (built inside a dispose scope) from dropped gradients: the
    /// loss value and a copy of each parameter's gradient, by name.</summary>
    public static (float Loss, Dictionary<string, Tensor> Grads) LossAndGradients(
        IReadOnlyList<(string name, TorchSharp.Modules.Parameter parameter)> parameters, Func<Tensor> loss)
    {
        foreach (var (_, p) in parameters)
            p.grad = null;
        float value;
        using (var scope = NewDisposeScope())
        {
            var l = loss();
            l.backward();
            value = l.item<float>();
        }

        GradientCheckpoint.ReleasePending();
        return (value, parameters.ToDictionary(p => p.name, p => p.parameter.grad!.clone()));
    }
}
