using System.Globalization;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Lora.Distributed;
using Lora.Models;
using Lora.Training.Objectives;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lora.Training;

/// <summary>
/// What the <see cref="Trainer"/> does differently with <see cref="TrainingOptions.DataParallel"/> (W ranks): each
/// global step reads A·W micro-batches (A = accumulation) of the same epoch order a single process reads, rank r taking
/// micro-batches r, r + W, …; the step's normaliser N and token count are summed over the ranks before the backward, so
/// every rank backpropagates S_m / N with the global N; the trainable gradients are then summed in one flat buffer per
/// dtype (buckets of <see cref="BucketBytes"/>), which makes them the single-process gradient of the same global batch;
/// clipping and AdamW then run identically on every rank, so the weights stay equal. Loss and metric sums are summed
/// for the log. At the start every rank checks that its configuration equals rank 0's and takes rank 0's trainable
/// weights. Each rank's dropout generator is seeded with seed + rank and saved as <c>rng_state_{rank}.bin</c>.
/// </summary>
internal static class DataParallelTraining
{
    /// <summary>The largest all-reduce buffer: LoRA gradients fit in one; full fine-tuning is reduced in pieces.</summary>
    public const long BucketBytes = 256L << 20;

    /// <summary>The RNG file of rank <paramref name="rank"/> (rank 0 keeps the single-process name).</summary>
    public static string RngFile(int rank) => rank == 0 ? TrainingCheckpoints.RngFile : $"rng_state_{rank.ToString(CultureInfo.InvariantCulture)}.bin";

    /// <summary>The micro-batches (indices into the step's A·W) this rank computes.</summary>
    public static IEnumerable<int> Mine(int count, DataParallel? group)
    {
        var ranks = group?.WorldSize ?? 1;
        var rank = group?.Rank ?? 0;
        for (var j = rank; j < count; j += ranks)
            yield return j;
    }

    /// <summary>Sums (normaliser, input tokens) over the ranks.</summary>
    public static (long Normalizer, long InputTokens) SumCounts(DataParallel group, long normalizer, long inputTokens)
    {
        Span<long> counts = [normalizer, inputTokens];
        group.AllReduceSum(counts, "all-reduce of the step's token counts");
        return (counts[0], counts[1]);
    }

    /// <summary>Sums the loss and metric sums over the ranks. Every rank computes the same metrics except at the end of
    /// an epoch, where a rank may have no micro-batch (<paramref name="someRankIdle"/>): then rank 0's metric names
    /// (it always has one) are broadcast first.</summary>
    public static double SumLoss(DataParallel group, double lossSum, Dictionary<string, double> metricSums, Dictionary<string, double> metricCounts, bool someRankIdle)
    {
        // "s:" metric sums, "c:" their own denominators (metrics not divided by the step's normaliser).
        var names = metricSums.Keys.Select(n => "s:" + n).Concat(metricCounts.Keys.Select(n => "c:" + n)).Order(StringComparer.Ordinal).ToList();
        if (someRankIdle)
        {
            var text = Encoding.UTF8.GetString(group.Broadcast(Encoding.UTF8.GetBytes(string.Join('\n', names)), 0, "broadcast of the metric names"));
            names = text.Length == 0 ? [] : [.. text.Split('\n')];
        }

        var values = new double[names.Count + 1];
        values[0] = lossSum;
        for (var i = 0; i < names.Count; i++)
            values[i + 1] = (names[i][0] == 's' ? metricSums : metricCounts).GetValueOrDefault(names[i][2..]);
        group.AllReduceSum(values, "all-reduce of the step's loss");
        metricSums.Clear();
        metricCounts.Clear();
        for (var i = 0; i < names.Count; i++)
            (names[i][0] == 's' ? metricSums : metricCounts)[names[i][2..]] = values[i + 1];
        return values[0];
    }

    /// <summary>Sums the gradients of <paramref name="parameters"/> over the ranks, in place. A parameter without a
    /// gradient on this rank (no micro-batch, or not reached) contributes zeros.</summary>
    public static void ReduceGradients(DataParallel group, IReadOnlyList<Parameter> parameters)
    {
        if (group.WorldSize == 1)
            return;
        using var scope = NewDisposeScope();
        var missing = parameters.Where(p => p.grad is null).ToList();
        if (missing.Count > 0)
        {
            // Zero gradients of the right shape, dtype and device, made the way autograd makes gradients.
            var zero = missing.Select(p => (p * 0).sum().to(ScalarType.Float32)).Aggregate((a, b) => a + b);
            zero.backward();
        }

        using var noGrad = no_grad();
        foreach (var bucket in Buckets(parameters, p => p.grad!))
        {
            var grads = bucket.Select(p => p.grad!).ToList();
            var flat = cat(grads.Select(g => g.flatten()).ToList());
            group.AllReduceSum(flat, $"all-reduce of {grads.Count} gradient tensors");
            long offset = 0;
            foreach (var g in grads)
            {
                var n = g.numel();
                g.copy_(flat.narrow(0, offset, n).view_as(g));
                offset += n;
            }
        }
    }

    /// <summary>Gives every rank rank 0's values of <paramref name="parameters"/>.</summary>
    public static void BroadcastParameters(DataParallel group, IReadOnlyList<Parameter> parameters)
    {
        if (group.WorldSize == 1)
            return;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        foreach (var bucket in Buckets(parameters, p => p))
        {
            var flat = cat(bucket.Select(p => p.detach().flatten()).ToList());
            group.Broadcast(flat, 0, $"broadcast of {bucket.Count} trainable tensors");
            long offset = 0;
            foreach (var p in bucket)
            {
                var n = p.numel();
                p.copy_(flat.narrow(0, offset, n).view_as(p));
                offset += n;
            }
        }
    }

    /// <summary>What every rank must agree on, one fact per line: the options, the schedule, the data (unit count and
    /// a hash of their lengths), the trainable tensors, a checksum of each frozen tensor, where training starts.</summary>
    public static string Describe(CausalLM model, TrainingOptions options, ITrainingObjective objective, IReadOnlyList<(string Name, Parameter Parameter)> trainable,
        int totalSteps, int stepsPerEpoch, string? resumeFrom, int startStep, Device device)
    {
        var text = new StringBuilder();
        text.Append("options ").AppendLine(JsonSerializer.Serialize(options));
        text.Append(CultureInfo.InvariantCulture, $"schedule: {totalSteps} steps, {stepsPerEpoch} per epoch").AppendLine();
        var lengths = objective.Lengths.ToArray();
        text.Append(CultureInfo.InvariantCulture, $"data: {lengths.Length} units, {lengths.Sum(l => (long)l)} tokens, lengths hash {Convert.ToHexString(SHA256.HashData(MemoryMarshal.AsBytes(lengths.AsSpan())))[..16]}").AppendLine();
        text.Append(CultureInfo.InvariantCulture, $"device type: {device.type}").AppendLine();
        text.Append(CultureInfo.InvariantCulture, $"start: {(resumeFrom is null ? "a fresh run" : $"resumed at step {startStep}")}").AppendLine();
        var trainableSet = trainable.Select(t => t.Parameter).ToHashSet(ReferenceEqualityComparer.Instance);
        foreach (var (name, p) in trainable)
            text.Append(CultureInfo.InvariantCulture, $"trainable {name} [{string.Join(",", p.shape)}] {p.dtype}").AppendLine();
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        foreach (var (name, t) in model.state_dict())
        {
            if (trainableSet.Contains(t) || t.numel() == 0 || t.device_type == DeviceType.META)
                continue;
            // A float64 sum, rounded: equal files give equal lines; reduction order differences stay below the rounding.
            var sum = t.to(ScalarType.Float64).sum().item<double>();
            text.Append(CultureInfo.InvariantCulture, $"frozen {name} [{string.Join(",", t.shape)}] {t.dtype} sum {sum:G10}").AppendLine();
        }

        return text.ToString();
    }

    private static IEnumerable<List<Parameter>> Buckets(IReadOnlyList<Parameter> parameters, Func<Parameter, Tensor> tensorOf)
    {
        foreach (var group in parameters.GroupBy(p => (tensorOf(p).dtype, tensorOf(p).device_type, tensorOf(p).device_index)))
        {
            var bucket = new List<Parameter>();
            long bytes = 0;
            foreach (var p in group)
            {
                var size = tensorOf(p).numel() * tensorOf(p).ElementSize;
                if (bucket.Count > 0 && bytes + size > BucketBytes)
                {
                    yield return bucket;
                    (bucket, bytes) = ([], 0);
                }

                bucket.Add(p);
                bytes += size;
            }

            if (bucket.Count > 0)
                yield return bucket;
        }
    }
}
