using System.IO.Compression;
using System.Security.Cryptography;
using System.Xml.Linq;
using Xunit.Abstractions;

namespace Lora.PackageTests;

/// <summary>
/// The Lora package as users get it: its layout, and a consumer that restores it from a feed, builds (the libstdc++
/// fix runs from the packed task), and computes with TorchSharp. One class, so these slow tests run one at a time.
/// </summary>
public sealed class PackageTests(PackageFixture package, ITestOutputHelper output) : IClassFixture<PackageFixture>
{
    private const string PatchLine = "lacks GLIBCXX_3.4.32; marked that requirement weak in";

    [Fact]
    public void Package_has_the_runtime_generator_build_assets_task_and_readme()
    {
        output.WriteLine(package.Pack.ToString());
        using var zip = ZipFile.OpenRead(package.PackagePath);
        var entries = zip.Entries.Select(e => e.FullName).ToHashSet(StringComparer.Ordinal);
        output.WriteLine(string.Join(Environment.NewLine, entries.Order(StringComparer.Ordinal)));

        string[] expected =
        [
            "lib/net10.0/Lora.Runtime.dll",
            "analyzers/dotnet/cs/Lora.Generators.dll",
            "buildTransitive/Lora.props",
            "buildTransitive/Lora.targets",
            "build/Lora.props",
            "build/Lora.targets",
            "tasks/netstandard2.0/Lora.Build.Tasks.dll",
            "README.md",
        ];
        Assert.All(expected, e => Assert.True(entries.Contains(e), $"{e} missing from the package"));
        // The generator and the task are tools of the build, never references of the user's code.
        Assert.Equal(["Lora.Runtime.dll"], entries.Where(e => e.StartsWith("lib/", StringComparison.Ordinal) && e.EndsWith(".dll", StringComparison.Ordinal)).Select(Path.GetFileName));
        // The shipped props/targets are the ones in src/Lora.Build.
        foreach (var file in new[] { "Lora.props", "Lora.targets" })
        {
            var source = File.ReadAllText(Path.Combine(package.RepoRoot, "src", "Lora.Build", "buildTransitive", file));
            Assert.Equal(source, Read(zip, "buildTransitive/" + file));
            Assert.Equal(source, Read(zip, "build/" + file));
        }

        var nuspec = XDocument.Parse(Read(zip, "Lora.nuspec"));
        var metadata = nuspec.Root!.Elements().Single(e => e.Name.LocalName == "metadata");
        Assert.Equal(PackageFixture.PackageId, Value(metadata, "id"));
        Assert.Equal(package.Version, Value(metadata, "version"));
        Assert.Equal("README.md", Value(metadata, "readme"));
        var dependencies = metadata.Descendants().Where(e => e.Name.LocalName == "dependency")
            .ToDictionary(e => (string)e.Attribute("id")!, e => (string)e.Attribute("version")!, StringComparer.Ordinal);
        output.WriteLine(string.Join(Environment.NewLine, dependencies.Select(d => $"dependency {d.Key} {d.Value}")));
        Assert.Contains("TorchSharp", dependencies.Keys);
        Assert.Contains("libtorch-cpu-linux-x64", dependencies.Keys);
        // Project references that only carry build-time tools must not turn into package dependencies.
        Assert.DoesNotContain(dependencies.Keys, id => id.StartsWith("Lora", StringComparison.Ordinal));
    }

    [Fact]
    public void Consumer_restores_builds_with_the_libstdcxx_fix_and_computes_with_TorchSharp()
    {
        var consumer = Consumer.Create(package, "consumer-cpu");
        var cached = CachedLibTorchSharp();
        var cachedHash = Hash(cached);

        Check(consumer.Restore());
        var build = Check(consumer.Build());

        var outputCopy = Path.Combine(consumer.NativeDirectory, "libLibTorchSharp.so");
        Assert.True(File.Exists(outputCopy), $"{outputCopy} missing. {build}");
        Assert.True(File.Exists(Path.Combine(consumer.NativeDirectory, "libtorch_cpu.so")), $"libtorch_cpu.so missing. {build}");
        if (SystemLibStdCxxLacksGlibcxx332())
        {
            // This machine needs the fix: the build says so in one line, and the output copy differs from the
            // NuGet cache's in one byte (the vna_flags of the GLIBCXX_3.4.32 requirement).
            Assert.Single(Lines(build.Output), l => l.Contains(PatchLine, StringComparison.Ordinal) && l.Contains("libLibTorchSharp.so", StringComparison.Ordinal));
            Assert.Equal(1, DifferingBytes(cached, outputCopy));
        }
        else
        {
            Assert.DoesNotContain(PatchLine, build.Output, StringComparison.Ordinal);
            Assert.Equal(0, DifferingBytes(cached, outputCopy));
        }

        Assert.Equal(cachedHash, Hash(cached));

        var run = Check(consumer.Run());
        Assert.True(Lines(run.Output).Contains(Consumer.ExpectedResult), $"expected '{Consumer.ExpectedResult}'. {run}");

        // An incremental build keeps the patched copy (same size and time as the cache's, so MSBuild does not copy
        // the original back) and has nothing to say.
        var again = Check(consumer.Build());
        Assert.DoesNotContain(PatchLine, again.Output, StringComparison.Ordinal);
        Assert.Equal(SystemLibStdCxxLacksGlibcxx332() ? 1 : 0, DifferingBytes(cached, outputCopy));
        Assert.Contains(Consumer.ExpectedResult, Check(consumer.Run()).Output, StringComparison.Ordinal);
        Assert.Equal(cachedHash, Hash(cached));
    }

    [Fact]
    public void System_backend_drops_the_cpu_libtorch_and_runs_on_LORA_LIBTORCH()
    {
        var consumer = Consumer.Create(package, "consumer-system", "<LoraTorchBackend>system</LoraTorchBackend>");
        Check(consumer.Restore());
        var build = Check(consumer.Build());

        var natives = Directory.Exists(consumer.NativeDirectory)
            ? Directory.GetFiles(consumer.NativeDirectory).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray()
            : [];
        // TorchSharp's own native shim stays; libtorch (libtorch_cpu.so, libc10.so, ...) comes from elsewhere.
        Assert.True(natives.SequenceEqual(["libLibTorchSharp.so"]), $"natives: {string.Join(", ", natives)}. {build}");
        Assert.False(File.Exists(Path.Combine(consumer.OutputDirectory, "libtorch_cpu.so")));

        // Elsewhere = LORA_LIBTORCH: here, the libtorch-cpu package's binaries stand in for a PyTorch install.
        var libtorch = Path.Combine(PackageDirectory("libtorch-cpu-linux-x64"), "runtimes", "linux-x64", "native");
        var run = Check(consumer.Run(new Dictionary<string, string?> { [ProcessRunner.LibTorchVariable] = libtorch }));
        Assert.True(Lines(run.Output).Contains(Consumer.ExpectedResult), $"expected '{Consumer.ExpectedResult}'. {run}");
    }

    [Fact]
    public void An_unknown_backend_is_build_error_LORABUILD002()
    {
        var consumer = Consumer.Create(package, "consumer-bogus");
        Check(consumer.Restore());

        var build = consumer.Build("-p:LoraTorchBackend=bogus");

        output.WriteLine(build.ToString());
        Assert.False(build.Succeeded, build.ToString());
        Assert.Contains("error LORABUILD002: LoraTorchBackend='bogus' is not one of cpu, cuda, system.", build.Output, StringComparison.Ordinal);
    }

    [Fact]
    public void Generator_builds_a_valid_plan_and_each_invalid_plan_is_exactly_its_LORA_error()
    {
        var fixtures = Path.Combine(package.RepoRoot, "tests", "fixtures", "peft");
        var llama = Path.Combine(fixtures, "llama_qv", "base");
        var consumer = Consumer.Create(package, "consumer-generator",
            program: GeneratorConsumer.Program(llama),
            extraItems: GeneratorConsumer.Checkpoints(llama, Path.Combine(fixtures, "gpt2_c_attn", "base")));
        Check(consumer.Restore());

        // Valid: generated from the packed analyzer, validated against the checkpoint by the packed task + analyzer, run.
        var build = Check(consumer.Build());
        Assert.DoesNotContain("warning LORA", build.Output, StringComparison.Ordinal);
        var run = Check(consumer.Run());
        var lines = Lines(run.Output);
        Assert.Contains(GeneratorConsumer.ResultPrefix + "model.embed_tokens,model.layers.0.self_attn.q_proj,model.layers.0.self_attn.v_proj,model.layers.1.self_attn.q_proj,model.layers.1.self_attn.v_proj", lines);
        Assert.Contains(lines, l => l.StartsWith(GeneratorConsumer.ExpectedSummary, StringComparison.Ordinal));

        // Invalid: one plan per file, one build; each file gets exactly its error, and the compiler adds none.
        foreach (var (file, (_, source)) in GeneratorConsumer.InvalidPlans)
            consumer.Write(file, source);
        consumer.Write("UsesInvalidPlan.cs", GeneratorConsumer.InvalidPlanUsage);
        var failed = consumer.Build();
        output.WriteLine(failed.ToString());
        Assert.False(failed.Succeeded, failed.ToString());
        var errors = Lines(failed.Output).Where(l => l.Contains(": error ", StringComparison.Ordinal)).Distinct(StringComparer.Ordinal).ToList();
        Assert.DoesNotContain(errors, l => l.Contains("error CS", StringComparison.Ordinal));
        foreach (var (file, (id, _)) in GeneratorConsumer.InvalidPlans)
        {
            var mine = errors.Where(l => l.Contains(Path.DirectorySeparatorChar + file + "(", StringComparison.Ordinal)).ToList();
            Assert.True(mine.Count == 1 && mine[0].Contains($"error {id}: ", StringComparison.Ordinal), $"{file}: expected exactly one error {id}, got:\n{string.Join("\n", mine)}\n{failed}");
        }

        Assert.Equal(GeneratorConsumer.InvalidPlans.Count, errors.Count);
    }

    private ProcessResult Check(ProcessResult result)
    {
        output.WriteLine(result.ToString());
        Assert.True(result.Succeeded, result.ToString());
        return result;
    }

    [Fact]
    public void Cli_packs_as_a_dotnet_tool_that_installs_and_runs_lora_info_from_a_clean_directory()
    {
        var pack = Check(package.ToolPack.Value);
        Assert.True(File.Exists(package.ToolPackagePath), $"{package.ToolPackagePath} missing. {pack}");
        const string tool = "tools/net10.0/any/";
        using (var zip = ZipFile.OpenRead(package.ToolPackagePath))
        {
            var settings = XDocument.Parse(Read(zip, tool + "DotnetToolSettings.xml"));
            var command = settings.Descendants().Single(e => e.Name.LocalName == "Command");
            Assert.Equal("lora", (string?)command.Attribute("Name"));
            Assert.Equal("lora.dll", (string?)command.Attribute("EntryPoint"));
            var entries = zip.Entries.Select(e => e.FullName).ToHashSet(StringComparer.Ordinal);
            Assert.Contains(tool + "lora.dll", entries);
            Assert.Contains(tool + "Lora.Runtime.dll", entries);
            Assert.Contains(tool + "runtimes/linux-x64/native/libtorch_cpu.so", entries);
            Assert.Contains(tool + "runtimes/linux-x64/native/libLibTorchSharp.so", entries);
        }

        // A directory with nothing in it but a nuget.config that knows only the temporary feed: the tool needs no
        // other package at install time (it carries its dependencies) and no SDK project to run.
        var clean = Path.Combine(package.Root, "tool-clean");
        Directory.CreateDirectory(clean);
        File.WriteAllText(Path.Combine(clean, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <clear />
                <add key="lora-package-tests" value="{package.Feed}" />
              </packageSources>
            </configuration>
            """);
        Check(ProcessRunner.DotNet(clean, ["tool", "install", PackageFixture.ToolPackageId, "--version", package.Version, "--tool-path", "tools", "--configfile", "nuget.config"]));

        var installed = Directory.GetFiles(Path.Combine(clean, "tools"), "libLibTorchSharp.so", SearchOption.AllDirectories).Single(f => f.Contains("linux-x64", StringComparison.Ordinal));
        // The libstdc++ fix travels inside the tool: patched at pack time (publish) where this machine needs it.
        Assert.Equal(SystemLibStdCxxLacksGlibcxx332() ? 1 : 0, DifferingBytes(CachedLibTorchSharp(), installed));

        var info = Check(ProcessRunner.Run(Path.Combine(clean, "tools", "lora"), clean, ["info"]));
        Assert.Contains(Lines(info.Output), l => l.StartsWith("512x512 matmul: ok", StringComparison.Ordinal));
        Assert.Contains("libtorch from application (libtorch package)", info.Output, StringComparison.Ordinal);
    }

    private string PackageDirectory(string id)
    {
        var dir = Path.Combine(package.NuGetPackageRoot, id.ToLowerInvariant());
        var versions = Directory.Exists(dir) ? Directory.GetDirectories(dir) : [];
        // The version restore picked for the consumer: the one the package depends on.
        using var zip = ZipFile.OpenRead(package.PackagePath);
        var nuspec = XDocument.Parse(Read(zip, "Lora.nuspec"));
        var version = nuspec.Descendants().Where(e => e.Name.LocalName == "dependency" && (string?)e.Attribute("id") == id)
            .Select(e => (string)e.Attribute("version")!).First();
        var match = versions.FirstOrDefault(v => string.Equals(Path.GetFileName(v), version, StringComparison.OrdinalIgnoreCase));
        return match ?? throw new InvalidOperationException($"{id} {version} is not in {dir} (found: {string.Join(", ", versions)})");
    }

    private string CachedLibTorchSharp() =>
        Path.Combine(PackageDirectory("TorchSharp"), "runtimes", "linux-x64", "native", "libLibTorchSharp.so");

    /// <summary>Debian 12 / Ubuntu 22.04: the system libstdc++ has no GLIBCXX_3.4.32 version string at all.</summary>
    private static bool SystemLibStdCxxLacksGlibcxx332()
    {
        const string libstdcxx = "/lib/x86_64-linux-gnu/libstdc++.so.6";
        return File.Exists(libstdcxx) && File.ReadAllBytes(libstdcxx).AsSpan().IndexOf("GLIBCXX_3.4.32\0"u8) < 0;
    }

    private static int DifferingBytes(string a, string b)
    {
        var x = File.ReadAllBytes(a);
        var y = File.ReadAllBytes(b);
        Assert.Equal(x.Length, y.Length);
        return Enumerable.Range(0, x.Length).Count(i => x[i] != y[i]);
    }

    private static string Hash(string path) => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(path)));

    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.TrimEntries);

    private static string Read(ZipArchive zip, string entry)
    {
        using var reader = new StreamReader(zip.GetEntry(entry)?.Open() ?? throw new InvalidOperationException($"{entry} missing from the package"));
        return reader.ReadToEnd();
    }

    private static string? Value(XElement metadata, string name) =>
        metadata.Elements().SingleOrDefault(e => e.Name.LocalName == name)?.Value;
}
