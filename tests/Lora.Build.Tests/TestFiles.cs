using System.Reflection;
using System.Text;
using Lora.Build.Elf;

namespace Lora.Build.Tests;

/// <summary>The real inputs of the ELF tests, and a scratch directory per test for the copies they modify.</summary>
public sealed class TestFiles : IDisposable
{
    public const string Library = "libstdc++.so.6";
    public const string Version = "GLIBCXX_3.4.32";

    /// <summary>
    /// This machine's libstdc++: only the raw material of the fakes below (<see cref="LibStdCxxStoppingAt330"/>,
    /// <see cref="LibStdCxxDefining332"/>), which come out the same whichever GLIBCXX versions it defines. No test
    /// gives it to the probe or the task: what they decide about it is a fact about the machine, not the code.
    /// </summary>
    public const string SystemLibStdCxx = "/lib/x86_64-linux-gnu/libstdc++.so.6";

    /// <summary>The newest GLIBCXX version of Debian 12 / Ubuntu 22.04's libstdc++ (GCC 12).</summary>
    public const string NewestOnDebian12 = "GLIBCXX_3.4.30";

    public TestFiles()
    {
        Directory = Path.Combine(Path.GetTempPath(), "lora-build-tests-" + Guid.NewGuid().ToString("N"));
        System.IO.Directory.CreateDirectory(Directory);
    }

    public string Directory { get; }

    /// <summary>
    /// The unpatched <c>libLibTorchSharp.so</c> in the NuGet cache: the path restore resolved for this test project
    /// (recorded at build time by the csproj), else derived from the recorded NuGet root. Read, never written.
    /// </summary>
    public static string CachedLibTorchSharp { get; } = FindCachedLibTorchSharp();

    /// <summary>A fresh, writable copy of the cached libLibTorchSharp.so.</summary>
    public string CopyOfLibTorchSharp(string name = "libLibTorchSharp.so") => CopyIn(CachedLibTorchSharp, name);

    public string CopyIn(string source, string name)
    {
        var path = Path.Combine(Directory, name);
        File.Copy(source, path, overwrite: false);
        return path;
    }

    public string Write(string name, byte[] bytes)
    {
        var path = Path.Combine(Directory, name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    /// <summary>
    /// A libstdc++ whose newest GLIBCXX version is 3.4.30, like Debian 12's / Ubuntu 22.04's (the systems the fix
    /// exists for): a copy of <see cref="SystemLibStdCxx"/> in which every newer <c>GLIBCXX_3.4.N</c> definition
    /// (N &gt; 30: none on those systems, 3.4.31 and up from GCC 13 on) is renamed
    /// <c>XLIBCXX_3.4.N</c> in the dynamic string table (same length, so nothing else moves).
    /// </summary>
    public string LibStdCxxStoppingAt330() => FakeLibStdCxx("libstdc++-to-3.4.30.so.6", defines332: false);

    /// <summary>
    /// A libstdc++ that defines <see cref="Version"/>, like GCC 13's and later: <see cref="LibStdCxxStoppingAt330"/>
    /// with its GLIBCXX_3.4.30 renamed GLIBCXX_3.4.32 (so it defines 3.4.32, not 3.4.30 nor 3.4.31).
    /// </summary>
    public string LibStdCxxDefining332() => FakeLibStdCxx("libstdc++-with-3.4.32.so.6", defines332: true);

    private string FakeLibStdCxx(string name, bool defines332)
    {
        var path = CopyIn(SystemLibStdCxx, name);
        var bytes = File.ReadAllBytes(path);
        var definitions = ElfImage.Load(path).VersionDefinitions();
        Assert.True(definitions.Contains(NewestOnDebian12), $"{SystemLibStdCxx} does not define {NewestOnDebian12}: the fakes are made from it");
        foreach (var newer in definitions.Where(d => Glibcxx34Minor(d) > 30))
            RenameVersion(path, bytes, newer, "X" + newer[1..]);
        if (defines332)
            RenameVersion(path, bytes, NewestOnDebian12, Version);
        File.WriteAllBytes(path, bytes);

        // The fake is what its summary says, on any machine.
        var glibcxx = ElfImage.Load(path).VersionDefinitions().Where(d => Glibcxx34Minor(d) >= 0).ToList();
        Assert.Equal(defines332 ? Version : NewestOnDebian12, glibcxx.MaxBy(Glibcxx34Minor));
        Assert.Single(glibcxx, d => Glibcxx34Minor(d) >= 30);
        return path;
    }

    /// <summary>N of GLIBCXX_3.4.N; -1 for any other name.</summary>
    private static int Glibcxx34Minor(string version) =>
        version.StartsWith("GLIBCXX_3.4.", StringComparison.Ordinal) && int.TryParse(version["GLIBCXX_3.4.".Length..], out var n) ? n : -1;

    /// <summary>Rewrites one version name in the string table of <c>.gnu.version_d</c>, in place.</summary>
    private static void RenameVersion(string path, byte[] bytes, string from, string to)
    {
        Assert.Equal(from.Length, to.Length);
        var image = ElfImage.Parse(path, bytes);
        var verdef = image.Sections.Single(s => s.Type == ElfImage.ShtGnuVerdef);
        var dynstr = image.Sections[(int)verdef.Link];
        var table = bytes.AsSpan((int)dynstr.Offset, (int)dynstr.Size);
        var at = table.IndexOf(Encoding.ASCII.GetBytes("\0" + from + "\0"));
        Assert.True(at >= 0, $"{path}: no {from} in the dynamic string table");
        Encoding.ASCII.GetBytes(to).CopyTo(table[(at + 1)..]);
    }

    public void Dispose()
    {
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
            // A leftover temp directory is not worth failing a test.
        }
    }

    private static string FindCachedLibTorchSharp()
    {
        var metadata = typeof(TestFiles).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .ToDictionary(a => a.Key, a => a.Value, StringComparer.Ordinal);
        if (metadata.TryGetValue("LibTorchSharpInPackageCache", out var resolved) && File.Exists(resolved))
            return resolved!;

        // Fallback: the newest TorchSharp version under the NuGet root restore used.
        metadata.TryGetValue("NuGetPackageRoot", out var root);
        var packageDir = Path.Combine(root ?? string.Empty, "torchsharp");
        var found = System.IO.Directory.Exists(packageDir)
            ? System.IO.Directory.EnumerateDirectories(packageDir)
                .Select(d => Path.Combine(d, "runtimes", "linux-x64", "native", "libLibTorchSharp.so"))
                .Where(File.Exists)
                .OrderByDescending(p => p, StringComparer.Ordinal)
                .FirstOrDefault()
            : null;
        return found ?? throw new InvalidOperationException(
            $"libLibTorchSharp.so not found in the NuGet cache (NuGetPackageRoot='{root}', recorded path='{resolved}'). Restore the test project first.");
    }
}
