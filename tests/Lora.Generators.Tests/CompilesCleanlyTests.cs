using Lora.Generators.Tests.Helpers;

namespace Lora.Generators.Tests;

/// <summary>Each snapshot input plus what the generator emits compiles with no error and no warning against the real
/// references, and the analyzers have nothing to say about it.</summary>
public class CompilesCleanlyTests
{
    [Theory]
    [MemberData(nameof(SnapshotTests.Cases), MemberType = typeof(SnapshotTests))]
    public async Task Input_and_generated_code_compile_without_diagnostics(string @case)
    {
        var input = File.ReadAllText(Path.Combine(TestCompilation.SnapshotsDirectory, @case, "input.cs"));
        var (result, output) = TestCompilation.Run(TestCompilation.Create(input));
        Assert.Empty(result.Diagnostics);
        Assert.Equal(2, result.Results.Single().GeneratedSources.Length);
        var problems = TestCompilation.Problems(output);
        Assert.True(problems.Count == 0, string.Join("\n", problems));
        Assert.Empty(await AnalyzerRunner.Diagnostics(output));
    }
}
