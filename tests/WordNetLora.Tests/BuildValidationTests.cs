using System.Text.RegularExpressions;
using Lora.PackageTests;

namespace WordNetLora.Tests;

/// <summary>The sample's plan is checked when it builds: a copy with a wrong target, and a plan that the embedded
/// checkpoint cannot satisfy, fail the build with their LORA errors and nothing else.</summary>
public class BuildValidationTests
{
    private static readonly string RepoRoot = typeof(BuildValidationTests).Assembly
        .GetCustomAttributes(typeof(System.Reflection.AssemblyMetadataAttribute), false).Cast<System.Reflection.AssemblyMetadataAttribute>()
        .Single(a => a.Key == "RepoRoot").Value!;

    [Fact]
    public void A_wrong_target_fails_the_build_with_the_LORA_error_only()
    {
        var sample = Path.Combine(RepoRoot, "samples", "WordNetLora");
        // Beside the sample, so its relative references (../../src, ../models) and the repository's build files apply.
        var copy = Path.Combine(RepoRoot, "samples", $".build-check-{Guid.NewGuid():N}");
        try
        {
            foreach (var file in Directory.EnumerateFiles(sample, "*", SearchOption.AllDirectories)
                .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                    && !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)))
            {
                var target = Path.Combine(copy, Path.GetRelativePath(sample, file));
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                File.Copy(file, target);
            }

            var plan = Path.Combine(copy, "WordNetLlama.cs");
            var text = File.ReadAllText(plan);
            var targets = Regex.Match(text, "Targets = \"[^\"]+\"");
            Assert.True(targets.Success, text);
            File.WriteAllText(plan, text.Replace(targets.Value, "Targets = \"qkv_proj\"", StringComparison.Ordinal)); // GPT-style, not Llama's
            // Right for the C# module tree, wrong for the embedded checkpoint (it has 4 layers): only the
            // <LoraCheckpoint> validation can see this one.
            File.WriteAllText(Path.Combine(copy, "BeyondTheCheckpoint.cs"), """
                using Lora;
                using Lora.Models;

                namespace WordNetLora;

                [Lora(R = 8, Targets = "q_proj", LayersToTransform = new[] { 9 })]
                public partial class BeyondTheCheckpoint : LlamaForCausalLM
                {
                }
                """);

            var build = ProcessRunner.DotNet(copy, ["build", "WordNetLora.csproj", "-p:BuildProjectReferences=false", "--disable-build-servers", "-tl:off", "-nologo", "-v:q"]);

            Assert.False(build.Succeeded, build.ToString());
            var errors = Regex.Matches(build.Output, @"error (\w+):").Select(m => m.Groups[1].Value).Distinct().ToList();
            Assert.True(errors.Count > 0 && errors.All(e => e.StartsWith("LORA", StringComparison.Ordinal)), build.ToString()); // no CS error, no LORABUILD error
            Assert.Matches(@"WordNetLlama\.cs\(\d+,\d+\): error LORA0001", build.Output);
            Assert.Matches(@"BeyondTheCheckpoint\.cs\(\d+,\d+\): error LORA0010: .*checkpoint", build.Output);
        }
        finally
        {
            if (Directory.Exists(copy))
                Directory.Delete(copy, recursive: true);
        }
    }
}
