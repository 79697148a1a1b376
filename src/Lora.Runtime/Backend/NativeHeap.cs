using System.Runtime.InteropServices;

namespace Lora.Backend;

/// <summary>
/// Gives freed native memory back to the operating system. Quantizing a model as it loads allocates and frees a
/// dense temporary per weight; glibc keeps such freed blocks in the process (its mmap threshold grows after large
/// frees), so without a trim the resident memory after a 4-bit load stays near the dense size (measured: 1.68× the
/// model's tensors for TinyLlama in NF4, 1.02× after the trim; docs/benchmarks.md). <c>malloc_trim</c> is glibc's;
/// elsewhere this does nothing.
/// </summary>
internal static class NativeHeap
{
    // glibc's soname: "libc" would probe libc.so, which is a linker script that exists only with libc6-dev.
    [DllImport("libc.so.6", EntryPoint = "malloc_trim")]
    private static extern int MallocTrim(nuint pad);

    private static bool _unavailable;

    public static void Trim()
    {
        if (_unavailable || !OperatingSystem.IsLinux())
            return;
        try
        {
            MallocTrim(0);
        }
        catch (Exception e) when (e is EntryPointNotFoundException or DllNotFoundException)
        {
            _unavailable = true; // not glibc (musl, ...)
        }
    }
}
