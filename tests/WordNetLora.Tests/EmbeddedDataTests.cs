using Lora.Data;
using WordNetLora.Data;

namespace WordNetLora.Tests;

/// <summary>The committed splits are what <c>split-data</c> promises: answer-disjoint, drawn from the facts the
/// probe recorded in knowledge.tsv (training ≥ 1 opening completed, held out ≥ 2).</summary>
public class EmbeddedDataTests
{
    private static readonly string DataDirectory = Path.Combine(typeof(EmbeddedDataTests).Assembly
        .GetCustomAttributes(typeof(System.Reflection.AssemblyMetadataAttribute), false).Cast<System.Reflection.AssemblyMetadataAttribute>()
        .Single(a => a.Key == "RepoRoot").Value!, "samples", "data", "wordnet");

    [Fact]
    public void The_embedded_splits_share_no_answer_and_hold_out_only_facts_the_base_knows()
    {
        var train = Read(DataCommands.TrainFileName);
        var heldOut = Read(DataCommands.HeldOutFileName);
        var openings = File.ReadLines(Path.Combine(DataDirectory, DataCommands.KnowledgeFileName)).Skip(1)
            .Select(line => line.Split('\t'))
            .ToDictionary(f => Question(f[0], f[1]) + "\n" + f[2], f => int.Parse(f[3], System.Globalization.CultureInfo.InvariantCulture));

        Assert.True(heldOut.Count >= 50);
        Assert.Empty(heldOut.Select(r => r.Output).Intersect(train.Select(r => r.Output)));
        Assert.Empty(heldOut.Select(r => r.Instruction).Intersect(train.Select(r => r.Instruction)));
        Assert.All(train, r => Assert.True(openings[r.Instruction + "\n" + r.Output] >= 1, r.Instruction));
        Assert.All(heldOut, r => Assert.True(openings[r.Instruction + "\n" + r.Output] >= 2, r.Instruction));
    }

    private static List<AlpacaRecord> Read(string file) =>
        DatasetReader.Read(Path.Combine(DataDirectory, file)).Cast<AlpacaRecord>().ToList();

    private static string Question(string relation, string word) =>
        new Fact(relation == "antonym" ? Relation.Antonym : Relation.Hypernym, word, "", "").Question;
}
