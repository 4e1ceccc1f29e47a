// The diagnostic test run4's session.sh ran (added to tests/gpu/test_gpu_ce.cpp for that run only,
// after FlagWrapSmallChunks, whose SmallChunks() configuration it uses):
TEST(CeCollMultiGpu, DISABLED_ManyChunksInOneCall) {
  const int n = Gpus();
  CeConfig cfg = SmallChunks();
  if (std::getenv("MANY_BULK")) { cfg.direct = true; cfg.slots = 16; cfg.bulk_round = 3; }
  if (std::getenv("MANY_MIB")) {
    const uint64_t mib = std::strtoull(std::getenv("MANY_MIB"), nullptr, 10);
    const std::vector<Case> cases = {{Collective::kAllReduce, DType::kFp32, (mib << 20) / 4 + 3}};
    Threads(n, [&](int r, ncclComm_t c, cudaStream_t s) { RankCases(r, n, c, s, cfg, cases); });
  }
}
