using TorchSharp;
using static TorchSharp.torch;

namespace Lora.Models;

/// <summary>
/// Padding-free packing: where each example of a packed row starts and how long it is, known on the host, so that
/// attention runs causally within each example with no mask at all (the attention kernel's own causal path, its
/// fastest) instead of through a dense block-diagonal <c>(B, 1, T, T)</c> mask. This is transformers' padding-free
/// path (<c>DataCollatorWithFlattening</c>, TRL's <c>padding_free=True</c>): the boundaries are read from position
/// ids that restart with each example (<c>modeling_flash_attention_utils.prepare_fa_kwargs_from_position_ids</c>
/// finds them where <c>position_ids == 0</c>); here a row start, or any position that does not continue the previous
/// one, starts a segment — which also splits an example cut by the previous row's end from what follows it, and the
/// right padding from the row's last example.
/// </summary>
public sealed class PackedSegments
{
    private PackedSegments(IReadOnlyList<(int Start, int Length)>[] rows) => Rows = rows;

    /// <summary>Per batch row, its segments in order; together they cover the row.</summary>
    public IReadOnlyList<(int Start, int Length)>[] Rows { get; }

    /// <summary>
    /// The segments of position ids <c>(B, T)</c> held on the host (reading them costs no device synchronisation),
    /// or null when they are on a device, or when every row is one sequence (plain causal attention applies).
    /// </summary>
    public static PackedSegments? FromPositionIds(Tensor positionIds)
    {
        if (positionIds.device_type != DeviceType.CPU || positionIds.ndim != 2)
            return null;
        var (batch, length) = ((int)positionIds.shape[0], (int)positionIds.shape[1]);
        using var host = positionIds.to(ScalarType.Int64).contiguous();
        var values = host.data<long>().ToArray();
        var rows = new IReadOnlyList<(int, int)>[batch];
        var packed = false;
        for (var b = 0; b < batch; b++)
        {
            var segments = new List<(int Start, int Length)>();
            var start = 0;
            for (var t = 1; t <= length; t++)
            {
                if (t < length && values[b * length + t] == values[b * length + t - 1] + 1)
                    continue;
                segments.Add((start, t - start));
                start = t;
            }

            packed |= segments.Count > 1;
            rows[b] = segments;
        }

        return packed ? new PackedSegments(rows) : null;
    }
}
