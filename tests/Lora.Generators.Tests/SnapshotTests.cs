using Lora.Generators.Tests.Helpers;

namespace Lora.Generators.Tests;

/// <summary>
/// The emitted code, compared to committed baselines: <c>Snapshots/&lt;Case&gt;/input.cs</c> → every generated
/// source equals <c>Snapshots/&lt;Case&gt;/&lt;HintName&gt;</c> (line ends normalised, generator version as
/// <c>%VERSION%</c>). Run with <c>LORA_ACCEPT_SNAPSHOTS=1</c> to rewrite the baselines after an intended change, and
/// review the diff.
/// </summary>
public class SnapshotTests
{
    public const string AcceptVariable = "LORA_ACCEPT_SNAPSHOTS";

    public static TheoryData<string> Cases => new(Directory.GetDirectories(TestCompilation.SnapshotsDirectory).Select(Path.GetFileName).Order(StringComparer.Ordinal)!);

    private static bool Accept => Environment.GetEnvironmentVariable(AcceptVariable) == "1";

    [Theory]
    [MemberData(nameof(Cases))]
    public void Generated_sources_match_the_baselines(string @case)
    {
        var dir = Path.Combine(TestCompilation.SnapshotsDirectory, @case);
        var (result, _) = TestCompilation.Run(TestCompilation.Create(File.ReadAllText(Path.Combine(dir, "input.cs"))));
        var generated = result.Results.Single().GeneratedSources
            .ToDictionary(s => s.HintName, s => Normalize(s.SourceText.ToString()), StringComparer.Ordinal);
        Assert.NotEmpty(generated);

        var expectedFiles = Directory.GetFiles(dir, "*.g.cs").ToDictionary(f => Path.GetFileName(f), f => f, StringComparer.Ordinal);
        var failures = new List<string>();
        foreach (var (hint, text) in generated.OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var path = Path.Combine(dir, hint);
            var expected = File.Exists(path) ? File.ReadAllText(path).Replace("\r\n", "\n", StringComparison.Ordinal) : null;
            if (expected == text)
                continue;
            if (Accept)
                File.WriteAllText(path, text);
            else
                failures.Add(expected is null ? $"{hint}: no baseline" : $"{hint}: {FirstDifference(expected, text)}");
        }

        foreach (var stale in expectedFiles.Keys.Where(k => !generated.ContainsKey(k)))
        {
            if (Accept)
                File.Delete(expectedFiles[stale]);
            else
                failures.Add($"{stale}: baseline exists but the generator no longer emits it");
        }

        Assert.True(failures.Count == 0, $"Snapshots of '{@case}' differ (rerun with {AcceptVariable}=1 to accept, then review the diff):\n" + string.Join("\n", failures));
    }

    [Fact]
    public void Accepting_snapshots_is_never_on_in_CI()
    {
        var ci = string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);
        Assert.False(ci && Accept, $"{AcceptVariable}=1 is set while CI=true: CI must compare against the committed baselines, not rewrite them.");
    }

    internal static string Normalize(string text) =>
        text.Replace("\r\n", "\n", StringComparison.Ordinal).Replace(LoraModelGenerator.Emitter.Version, "%VERSION%", StringComparison.Ordinal);

    private static string FirstDifference(string expected, string actual)
    {
        var e = expected.Split('\n');
        var a = actual.Split('\n');
        for (var i = 0; i < Math.Max(e.Length, a.Length); i++)
        {
            var el = i < e.Length ? e[i] : "<end>";
            var al = i < a.Length ? a[i] : "<end>";
            if (el != al)
                return $"line {i + 1}: expected `{el.Trim()}` but got `{al.Trim()}`";
        }

        return "differs";
    }
}
