using Lora.Data;
using Lora.Models;
using Lora.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Evaluation;

/// <summary>
/// Causal-LM evaluation: the sum of every predicted token's loss over all examples divided by their count — the
/// same number as transformers' <c>model(input_ids, labels=labels).loss</c> on all rows as one padded batch.
/// </summary>
public static class Evaluator
{
    public static EvaluationResult Evaluate(CausalLM model, IEnumerable<TokenizedExample> examples)
    {
        var device = model.parameters().First().device;
        model.eval();
        using var noGrad = no_grad();
        double sum = 0;
        long tokens = 0;
        foreach (var example in examples)
        {
            using var scope = NewDisposeScope();
            var ids = tensor(example.InputIds.Select(i => (long)i).ToArray(), [1, example.InputIds.Length], device: device);
            var labels = tensor(example.Labels.Select(i => (long)i).ToArray(), [1, example.Labels.Length], device: device);
            var (loss, count) = LossSum(model, ids, labels);
            sum += loss;
            tokens += count;
        }

        if (tokens == 0)
            throw new LoraException("The evaluation data has no predicted tokens (every row is shorter than 2 tokens or fully masked with -100).");
        var mean = sum / tokens;
        return new EvaluationResult(mean, Math.Exp(mean), tokens);
    }

    private static (double Sum, long Tokens) LossSum(CausalLM model, Tensor ids, Tensor labels)
    {
        var logits = model.Forward(ids);
        var (sum, count) = CausalLMLoss.Sum(logits, labels);
        return (sum.to(ScalarType.Float64).item<double>(), count);
    }
}
