using Lora.Bench;

return args.FirstOrDefault() switch
{
    "load-memory" => LoadMemory.Run(args[1..]),
    "train-throughput" => TrainThroughput.Run(args[1..]),
    "generate" => GenerateBench.Run(args[1..]),
    "optimizer-step" => OptimizerStep.Run(args[1..]),
    "quant-memory" => QuantMemory.Run(args[1..]),
    "qlora-step" => QloraStep.Run(args[1..]),
    "quant-speed" => QuantSpeed.Run(args[1..]),
    "methods" => MethodComparison.Run(args[1..]),
    "kernels" => KernelsBench.Run(args[1..]),
    "step-breakdown" => StepBreakdown.Run(args[1..]),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("""
        usage: Lora.Bench COMMAND [options]   (docs/benchmarks.md)
          train-throughput  [--layers N --hidden N --inter N --heads N --kv-heads N --vocab N --seq N --batch N --r N --alpha N
                             --targets LIST --gradient-checkpointing --warmup N --steps N --dtype auto|fp32|bf16|fp16
                             --optimizer fused|torchsharp --loss fused|logits --kernels fused|lean|composite --pack K --pack-attention free|mask --device D --threads N --json]       (flags of ../shared/gpu/peft_bench.py)
          generate          [--layers N --hidden N --inter N --heads N --kv-heads N --vocab N --batch N --prompt N --new N
                             --dtype auto|fp32|bf16|fp16 --device D --threads N --json] (flags of ../shared/gpu/generate_bench.py)
          optimizer-step    [shape flags, --r 8 --targets LIST --rounds N]: TorchSharp AdamW + clipping vs the fused ones
          load-memory [--dir DIR] [--dtype bf16|fp32] | quant-memory [--dir DIR] | qlora-step [--quantize nf4|fp4|int8 --device D] | quant-speed
          kernels           [shape flags, --r N --dtype D --threads N --rounds N]: each Kernels/ function vs the composite ops
          step-breakdown    [shape flags as train-throughput, --steps N --threads N --json]: the step split into its parts, and the
                             base matmuls and attention of the step run alone (how far MFU can go at the shape)
          methods           [--out DIR --steps N --pretrain-steps N] [--table]: the methods comparison (docs/methods.md)
        """);
    return 2;
}
