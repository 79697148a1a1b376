using System.Runtime.InteropServices;

namespace Lora.Distributed;

/// <summary>The few libc calls the MPI and NCCL bindings need: <c>dlopen</c> with <c>RTLD_GLOBAL</c> (Open MPI's
/// components resolve libmpi's symbols through the global scope, as mpi4py loads it), <c>setenv</c> (.NET's
/// <see cref="Environment.SetEnvironmentVariable(string, string)"/> does not reach the native environment that MPI
/// reads) and <c>_exit</c> (the watchdog's last resort when no MPI call can stop the job).</summary>
internal static partial class Posix
{
    private const string LibC = "libc.so.6";
    private const int RtldNow = 0x2;
    private const int RtldGlobal = 0x100;
    private const int RtldNoLoad = 0x4;

    [LibraryImport(LibC, EntryPoint = "dlopen", StringMarshalling = StringMarshalling.Utf8)]
    private static partial nint DlOpen(string file, int flags);

    [LibraryImport(LibC, EntryPoint = "dlerror")]
    private static partial nint DlError();

    [LibraryImport(LibC, EntryPoint = "setenv", StringMarshalling = StringMarshalling.Utf8)]
    private static partial int SetEnv(string name, string value, int overwrite);

    [LibraryImport(LibC, EntryPoint = "_exit")]
    internal static partial void Exit(int status);

    /// <summary>Loads <paramref name="file"/> (a path or a name the dynamic linker searches) into the global symbol
    /// scope; returns the handle, or 0 and the linker's message.</summary>
    public static nint LoadGlobal(string file, out string? error)
    {
        error = null;
        if (!OperatingSystem.IsLinux())
            return NativeLibrary.TryLoad(file, out var handle) ? handle : 0;
        var h = DlOpen(file, RtldNow | RtldGlobal);
        if (h == 0)
            error = Marshal.PtrToStringUTF8(DlError());
        return h;
    }

    /// <summary>The handle of <paramref name="name"/> when it is already in the process (nothing is loaded), or 0.</summary>
    public static nint AlreadyLoaded(string name) => OperatingSystem.IsLinux() ? DlOpen(name, RtldNow | RtldNoLoad) : 0;

    /// <summary>Sets a variable in the native environment unless it is set already (the user's value wins).</summary>
    public static void SetDefault(string name, string value)
    {
        if (OperatingSystem.IsLinux() && Environment.GetEnvironmentVariable(name) is null)
            _ = SetEnv(name, value, overwrite: 0);
    }
}
