namespace Lora.Data;

/// <summary>
/// Packs examples into rows of exactly max_length tokens (TRL's "wrapped" packing, transformers'
/// <c>group_texts</c>): examples are concatenated in order and the stream is cut every max_length tokens, so no
/// padding is spent; only the last row may be shorter (the collator pads it). An example cut by a row end continues
/// in the next row with its positions continuing. Per C15, position ids restart at 0 for each example and the
/// first label of each example is -100.
/// </summary>
public static class Packer
{
    public static IEnumerable<PackedSequence> Pack(IEnumerable<TokenizedExample> examples, int maxLength)
    {
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxLength, 2);
        return PackCore(examples, maxLength);
    }

    private static IEnumerable<PackedSequence> PackCore(IEnumerable<TokenizedExample> examples, int maxLength)
    {
        var ids = new List<int>(maxLength);
        var labels = new List<int>(maxLength);
        var positions = new List<int>(maxLength);
        var segments = new List<int>(maxLength);
        var segment = 0;
        foreach (var example in examples)
        {
            var offset = 0;
            while (offset < example.InputIds.Length)
            {
                var take = Math.Min(maxLength - ids.Count, example.InputIds.Length - offset);
                for (var i = offset; i < offset + take; i++)
                {
                    ids.Add(example.InputIds[i]);
                    labels.Add(i == 0 ? TokenizedExample.IgnoreIndex : example.Labels[i]);
                    positions.Add(i);
                    segments.Add(segment);
                }

                offset += take;
                if (ids.Count == maxLength)
                {
                    yield return Row();
                    segment = 0;
                }
                else
                {
                    segment++;
                }
            }
        }

        if (ids.Count > 0)
            yield return Row();

        PackedSequence Row()
        {
            var row = new PackedSequence([.. ids], [.. labels], [.. positions], [.. segments]);
            ids.Clear();
            labels.Clear();
            positions.Clear();
            segments.Clear();
            return row;
        }
    }
}
