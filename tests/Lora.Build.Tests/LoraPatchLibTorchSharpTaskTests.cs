using Lora.Build.Elf;
using Lora.Build.Tasks;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

namespace Lora.Build.Tests;

/// <summary>The MSBuild task as the targets run it, through Execute() and a fake build engine.</summary>
public sealed class LoraPatchLibTorchSharpTaskTests : IDisposable
{
    private readonly TestFiles _files = new();
    private readonly FakeBuildEngine _engine = new();

    public void Dispose() => _files.Dispose();

    [Fact]
    public void The_probe_finds_that_a_libstdcxx_stopping_at_3_4_30_lacks_the_version()
    {
        // Debian 12 / Ubuntu 22.04 stop at GLIBCXX_3.4.30: the reason the fix exists.
        var libStdCxx = _files.LibStdCxxStoppingAt330();

        Assert.True(LibStdCxxProbe.Defines(libStdCxx, TestFiles.NewestOnDebian12));
        Assert.False(LibStdCxxProbe.Defines(libStdCxx, "GLIBCXX_3.4.31"));
        Assert.False(LibStdCxxProbe.Defines(libStdCxx, TestFiles.Version));
    }

    [Fact]
    public void The_probe_finds_the_version_in_a_libstdcxx_that_defines_3_4_32()
    {
        var libStdCxx = _files.LibStdCxxDefining332();

        Assert.True(LibStdCxxProbe.Defines(libStdCxx, TestFiles.Version));
        Assert.False(LibStdCxxProbe.Defines(libStdCxx, "GLIBCXX_9.9.99"));
    }

    [Fact]
    public void The_probe_looks_in_LD_LIBRARY_PATH_first()
    {
        var fake = _files.LibStdCxxDefining332();
        var dir = Path.Combine(_files.Directory, "lib");
        Directory.CreateDirectory(dir);
        File.Move(fake, Path.Combine(dir, "libstdc++.so.6"));

        Assert.Equal(Path.Combine(dir, "libstdc++.so.6"), LibStdCxxProbe.Locate("/nonexistent:" + dir));
        Assert.True(LibStdCxxProbe.Defines(Path.Combine(dir, "libstdc++.so.6"), TestFiles.Version));
    }

    [Fact]
    public void Patches_when_libstdcxx_lacks_the_version_and_says_so_in_one_line()
    {
        var output = _files.CopyOfLibTorchSharp();
        var task = NewTask(_files.LibStdCxxStoppingAt330(), output, Path.Combine(_files.Directory, "missing", "libLibTorchSharp.so"));

        Assert.True(task.Execute(), _engine.Transcript());

        Assert.Empty(_engine.Errors);
        var line = Assert.Single(_engine.Messages, m => m.Importance == MessageImportance.High);
        Assert.Contains("lacks GLIBCXX_3.4.32", line.Message, StringComparison.Ordinal);
        Assert.Contains(output, line.Message, StringComparison.Ordinal);
        Assert.True(IsWeak(output));
    }

    [Fact]
    public void A_second_run_is_silent_and_writes_nothing()
    {
        var libStdCxx = _files.LibStdCxxStoppingAt330();
        var output = _files.CopyOfLibTorchSharp();
        Assert.True(NewTask(libStdCxx, output).Execute(), _engine.Transcript());
        var bytes = File.ReadAllBytes(output);
        var stamp = File.GetLastWriteTimeUtc(output);
        _engine.Messages.Clear();

        Assert.True(NewTask(libStdCxx, output).Execute(), _engine.Transcript());

        Assert.DoesNotContain(_engine.Messages, m => m.Importance == MessageImportance.High);
        Assert.Equal(bytes, File.ReadAllBytes(output));
        Assert.Equal(stamp, File.GetLastWriteTimeUtc(output));
    }

    [Fact]
    public void Leaves_files_untouched_when_libstdcxx_defines_the_version()
    {
        var libStdCxx = _files.LibStdCxxDefining332();
        Assert.True(LibStdCxxProbe.Defines(libStdCxx, TestFiles.Version));
        var output = _files.CopyOfLibTorchSharp();
        var bytes = File.ReadAllBytes(output);
        var stamp = File.GetLastWriteTimeUtc(output);

        Assert.True(NewTask(libStdCxx, output).Execute(), _engine.Transcript());

        Assert.Empty(_engine.Errors);
        Assert.DoesNotContain(_engine.Messages, m => m.Importance == MessageImportance.High);
        Assert.Equal(bytes, File.ReadAllBytes(output));
        Assert.Equal(stamp, File.GetLastWriteTimeUtc(output));
        Assert.False(IsWeak(output));
    }

    [Theory]
    [InlineData("not-elf")]
    [InlineData("empty")]
    [InlineData("first-4k")]
    [InlineData("header-only")]
    public void A_broken_library_is_build_error_LORABUILD001_naming_the_file(string kind)
    {
        var broken = MalformedElfTests.Broken(_files, kind);
        var task = NewTask(_files.LibStdCxxStoppingAt330(), broken);

        Assert.False(task.Execute());

        var error = Assert.Single(_engine.Errors);
        Assert.Equal("LORABUILD001", error.Code);
        Assert.Equal(broken, error.File);
        Assert.Contains(broken, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_broken_libstdcxx_is_build_error_LORABUILD001_naming_it()
    {
        var broken = _files.Write("libstdc++.so.6", "not a library"u8.ToArray());
        var output = _files.CopyOfLibTorchSharp();

        Assert.False(NewTask(broken, output).Execute());

        var error = Assert.Single(_engine.Errors);
        Assert.Equal("LORABUILD001", error.Code);
        Assert.Contains(broken, error.Message, StringComparison.Ordinal);
        Assert.False(IsWeak(output));
    }

    [Fact]
    public void A_library_that_cannot_be_rewritten_is_build_error_LORABUILD004()
    {
        var output = _files.CopyOfLibTorchSharp();
        var bytes = File.ReadAllBytes(output);
        // The patcher's temporary file name is taken by a directory, so the write fails (permissions cannot be
        // used for this: the tests may run as root).
        Directory.CreateDirectory(output + ".lora-tmp");

        Assert.False(NewTask(_files.LibStdCxxStoppingAt330(), output).Execute());

        var error = Assert.Single(_engine.Errors);
        Assert.Equal("LORABUILD004", error.Code);
        Assert.Equal(output, error.File);
        Assert.Contains($"could not patch {output}: ", error.Message, StringComparison.Ordinal);
        Assert.Equal(bytes, File.ReadAllBytes(output));
    }

    private LoraPatchLibTorchSharp NewTask(string libStdCxx, params string[] files) => new()
    {
        BuildEngine = _engine,
        LibStdCxxPath = libStdCxx,
        Files = files.Select(f => (ITaskItem)new TaskItem(f)).ToArray(),
    };

    private static bool IsWeak(string path) =>
        ElfImage.Load(path).VersionNeeds().Single(n => n.Version == TestFiles.Version).Flags == WeakVersionPatcher.VerFlgWeak;
}
