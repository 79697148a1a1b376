using static TorchSharp.torch;

namespace Lora.Training.Objectives;

/// <summary>Host-side padding of token rows into <c>(B, T)</c> int64 tensors (TRL's <c>pad</c>,
/// <c>trl/trainer/utils.py</c>).</summary>
internal static class Padding
{
    /// <summary>Right padding: ids, attention mask (1 = token), and the number of real tokens.</summary>
    public static (Tensor Ids, Tensor Mask, long Tokens) Right(IReadOnlyList<int[]> rows, long padTokenId)
    {
        var t = Math.Max(1, rows.Max(r => r.Length));
        var ids = new long[rows.Count * t];
        var mask = new long[rows.Count * t];
        long tokens = 0;
        for (var b = 0; b < rows.Count; b++)
        {
            for (var i = 0; i < t; i++)
            {
                var real = i < rows[b].Length;
                ids[b * t + i] = real ? rows[b][i] : padTokenId;
                mask[b * t + i] = real ? 1 : 0;
            }

            tokens += rows[b].Length;
        }

        return (tensor(ids, [rows.Count, t]), tensor(mask, [rows.Count, t]), tokens);
    }

    /// <summary>Left padding (prompts for generation): ids and attention mask.</summary>
    public static (Tensor Ids, Tensor Mask) Left(IReadOnlyList<int[]> rows, long padTokenId)
    {
        var t = Math.Max(1, rows.Max(r => r.Length));
        var ids = new long[rows.Count * t];
        var mask = new long[rows.Count * t];
        for (var b = 0; b < rows.Count; b++)
        {
            var offset = t - rows[b].Length;
            for (var i = 0; i < t; i++)
            {
                var real = i >= offset;
                ids[b * t + i] = real ? rows[b][i - offset] : padTokenId;
                mask[b * t + i] = real ? 1 : 0;
            }
        }

        return (tensor(ids, [rows.Count, t]), tensor(mask, [rows.Count, t]));
    }
}
