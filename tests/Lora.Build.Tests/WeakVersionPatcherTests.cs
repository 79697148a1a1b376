using System.Diagnostics;
using Lora.Build.Elf;

namespace Lora.Build.Tests;

/// <summary>The libstdc++ fix on a copy of the real libLibTorchSharp.so from the NuGet cache.</summary>
public sealed class WeakVersionPatcherTests : IDisposable
{
    private readonly TestFiles _files = new();

    public void Dispose() => _files.Dispose();

    [Fact]
    public void The_real_library_strongly_requires_GLIBCXX_3_4_32_exactly_once()
    {
        var needs = ElfImage.Load(TestFiles.CachedLibTorchSharp).VersionNeeds();

        var need = Assert.Single(needs, n => n.Version == TestFiles.Version);
        Assert.Equal(TestFiles.Library, need.File);
        Assert.Equal(0, need.Flags & WeakVersionPatcher.VerFlgWeak);
        // Sanity of the reader: the other libstdc++ versions and libc are there too.
        Assert.Contains(needs, n => n.File == TestFiles.Library && n.Version == "GLIBCXX_3.4.30");
        Assert.Contains(needs, n => n.File == "libc.so.6" && n.Version == "GLIBC_2.34");
    }

    [Fact]
    public void Patch_sets_the_weak_flag_on_that_entry_only_and_changes_only_its_flag_bytes()
    {
        var original = File.ReadAllBytes(TestFiles.CachedLibTorchSharp);
        var path = _files.CopyOfLibTorchSharp();
        var before = ElfImage.Load(path).VersionNeeds();

        Assert.Equal(PatchOutcome.Patched, WeakVersionPatcher.Patch(path, TestFiles.Library, TestFiles.Version));

        var after = ElfImage.Load(path).VersionNeeds();
        Assert.Equal(before.Count, after.Count);
        for (var i = 0; i < before.Count; i++)
        {
            Assert.Equal((before[i].File, before[i].Version, before[i].FlagsOffset), (after[i].File, after[i].Version, after[i].FlagsOffset));
            var isTarget = before[i].File == TestFiles.Library && before[i].Version == TestFiles.Version;
            var expected = isTarget ? (ushort)(before[i].Flags | WeakVersionPatcher.VerFlgWeak) : before[i].Flags;
            Assert.True(expected == after[i].Flags, $"{after[i].File} {after[i].Version}: flags 0x{after[i].Flags:x}, expected 0x{expected:x}");
        }

        var target = before.Single(n => n.Version == TestFiles.Version);
        var patched = File.ReadAllBytes(path);
        Assert.Equal(original.Length, patched.Length);
        var differing = Enumerable.Range(0, original.Length).Where(i => original[i] != patched[i]).Select(i => (long)i).ToList();
        // vna_flags is a little-endian 16-bit field: 0x0000 -> 0x0002 changes its low byte only.
        Assert.Equal(new[] { target.FlagsOffset }, differing);
        Assert.Equal(original[target.FlagsOffset] | WeakVersionPatcher.VerFlgWeak, patched[target.FlagsOffset]);

        // The cache copy is never touched.
        Assert.Equal(original, File.ReadAllBytes(TestFiles.CachedLibTorchSharp));
    }

    [Fact]
    public void Readelf_agrees_that_the_requirement_is_weak()
    {
        // An independent reader of the result. A missing readelf fails the test rather than skipping it: .ci/run
        // installs binutils where it is absent.
        var readelf = OnPath("readelf");
        Assert.True(readelf is not null,
            "readelf is not on PATH: this test checks the patch with binutils' readelf, an ELF reader independent of ours. " +
            "Install binutils (Debian/Ubuntu: apt-get install binutils; .ci/run does so when it is missing).");
        var path = _files.CopyOfLibTorchSharp();
        WeakVersionPatcher.Patch(path, TestFiles.Library, TestFiles.Version);

        var lines = RunReadelf(readelf!, path).Split('\n');
        Assert.Contains(lines, l => l.Contains("Name: GLIBCXX_3.4.32", StringComparison.Ordinal) && l.Contains("Flags: WEAK", StringComparison.Ordinal));
        Assert.Single(lines, l => l.Contains("Flags: WEAK", StringComparison.Ordinal));
    }

    [Fact]
    public void Patch_keeps_the_timestamp_and_file_mode()
    {
        var path = _files.CopyOfLibTorchSharp();
        var stamp = new DateTime(2024, 1, 2, 3, 4, 5, DateTimeKind.Utc);
        File.SetLastWriteTimeUtc(path, stamp);
        const UnixFileMode mode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
        File.SetUnixFileMode(path, mode);

        Assert.Equal(PatchOutcome.Patched, WeakVersionPatcher.Patch(path, TestFiles.Library, TestFiles.Version));

        // Same size and time as the NuGet copy: MSBuild's copy-if-changed leaves the patched output alone.
        Assert.Equal(stamp, File.GetLastWriteTimeUtc(path));
        Assert.Equal(mode, File.GetUnixFileMode(path));
        Assert.Equal(new[] { Path.GetFileName(path) }, Directory.GetFiles(_files.Directory).Select(Path.GetFileName));
    }

    [Fact]
    public void A_read_only_library_is_patched_and_stays_read_only()
    {
        var path = _files.CopyOfLibTorchSharp();
        const UnixFileMode readOnly = UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
        File.SetUnixFileMode(path, readOnly);

        Assert.Equal(PatchOutcome.Patched, WeakVersionPatcher.Patch(path, TestFiles.Library, TestFiles.Version));

        Assert.Equal(readOnly, File.GetUnixFileMode(path));
        Assert.Equal(PatchOutcome.AlreadyWeak, WeakVersionPatcher.Patch(path, TestFiles.Library, TestFiles.Version));
    }

    [Fact]
    public void A_second_patch_is_AlreadyWeak_and_writes_nothing()
    {
        var path = _files.CopyOfLibTorchSharp();
        Assert.Equal(PatchOutcome.Patched, WeakVersionPatcher.Patch(path, TestFiles.Library, TestFiles.Version));
        // A time the patcher would not produce itself, so a rewrite would show.
        var stamp = new DateTime(2023, 6, 7, 8, 9, 10, DateTimeKind.Utc);
        File.SetLastWriteTimeUtc(path, stamp);
        var once = File.ReadAllBytes(path);
        var inode = Inode(path);

        Assert.Equal(PatchOutcome.AlreadyWeak, WeakVersionPatcher.Patch(path, TestFiles.Library, TestFiles.Version));

        Assert.Equal(once, File.ReadAllBytes(path));
        Assert.Equal(stamp, File.GetLastWriteTimeUtc(path));
        Assert.Equal(inode, Inode(path));
    }

    [Fact]
    public void A_library_that_does_not_require_the_version_is_NotRequired_and_untouched()
    {
        var libTorchSharp = _files.CopyOfLibTorchSharp();
        var libStdCxx = _files.CopyIn(TestFiles.SystemLibStdCxx, "libstdc++.so.6");
        var stamp = File.GetLastWriteTimeUtc(libTorchSharp);
        var bytes = File.ReadAllBytes(libTorchSharp);

        Assert.Equal(PatchOutcome.NotRequired, WeakVersionPatcher.Patch(libTorchSharp, TestFiles.Library, "GLIBCXX_9.9.99"));
        Assert.Equal(PatchOutcome.NotRequired, WeakVersionPatcher.Patch(libTorchSharp, "libfoo.so.1", TestFiles.Version));
        // libstdc++ defines GLIBCXX_* and needs none of them from itself.
        Assert.Equal(PatchOutcome.NotRequired, WeakVersionPatcher.Patch(libStdCxx, TestFiles.Library, TestFiles.Version));

        Assert.Equal(bytes, File.ReadAllBytes(libTorchSharp));
        Assert.Equal(stamp, File.GetLastWriteTimeUtc(libTorchSharp));
        Assert.Equal(File.ReadAllBytes(TestFiles.SystemLibStdCxx), File.ReadAllBytes(libStdCxx));
    }

    [Fact]
    public void Patching_a_hard_link_into_the_cache_breaks_the_link_instead_of_writing_through_it()
    {
        // MSBuild may hard-link copy-local files; the cache side must stay as it was.
        var cacheSide = _files.CopyOfLibTorchSharp("cache-side.so");
        var output = Path.Combine(_files.Directory, "libLibTorchSharp.so");
        Link(cacheSide, output);
        var original = File.ReadAllBytes(cacheSide);

        Assert.Equal(PatchOutcome.Patched, WeakVersionPatcher.Patch(output, TestFiles.Library, TestFiles.Version));

        Assert.Equal(original, File.ReadAllBytes(cacheSide));
        Assert.NotEqual(original, File.ReadAllBytes(output));
    }

    private static string RunReadelf(string readelf, string path)
    {
        var start = new ProcessStartInfo(readelf) { RedirectStandardOutput = true, UseShellExecute = false };
        start.ArgumentList.Add("-V");
        start.ArgumentList.Add(path);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEnd();
        Assert.True(process.WaitForExit(60_000), "readelf did not finish");
        return output;
    }

    /// <summary>The first executable <paramref name="tool"/> in a PATH directory; null if none.</summary>
    private static string? OnPath(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty)
            .Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(d => Path.Combine(d, tool))
            .FirstOrDefault(p => File.Exists(p) && (File.GetUnixFileMode(p) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0);

    private static string Inode(string path) => RunTool("stat", "-c", "%i", path);

    private static void Link(string existing, string link) => RunTool("ln", existing, link);

    private static string RunTool(string tool, params string[] args)
    {
        var start = new ProcessStartInfo(tool) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var arg in args)
            start.ArgumentList.Add(arg);
        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEnd();
        var error = process.StandardError.ReadToEnd();
        Assert.True(process.WaitForExit(60_000), $"{tool} did not finish");
        Assert.True(process.ExitCode == 0, $"{tool} {string.Join(' ', args)} failed: {error}");
        return output.Trim();
    }
}
