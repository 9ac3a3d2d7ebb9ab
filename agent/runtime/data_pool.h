#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

// A data pool (storage.data_pool): a directory on btrfs, with quota on,
// where datasets are read-only subvolumes and each environment writes on
// snapshots of them, block by block (a first write to a 1 GiB table copies
// the blocks written, not the file, as an overlay would).
//
//   <pool>/datasets/<hash>/<i>      read-only subvolume: kept path i of dataset <hash>,
//                                   its files owned by container ids (0-based)
//   <pool>/datasets/<hash>.part/    a dataset being made; a leftover one is a crash's,
//                                   removed by recovery
//   <pool>/envs/<name>/<i>          writable snapshot of a dataset's volume i, mounted in
//                                   container <name>, its qgroup limited
//
// A dataset appears under its final name with one rename, whole or not at all.
namespace qabox {

std::string poolDatasetsDir(const std::string& pool);
std::string poolEnvsDir(const std::string& pool);
std::string datasetVolumeDir(const std::string& pool, const std::string& hash);
// Volume i of a dataset, what attachData takes as a DataSnapshot's source.
std::string datasetVolume(const std::string& pool, const std::string& hash, size_t i);
std::string envDataDir(const std::string& pool, const std::string& container);

// At agent start: `pool` exists and is on btrfs, quota is on, datasets/ and
// envs/ exist (0711). Errors name the key storage.data_pool.
Status preparePool(const std::string& pool);

// Makes dataset `hash` from a complete tree `fromDir` (a merged view, not an
// overlay's bare upper dir): for each of `keptPaths` (relative, each a
// directory beneath fromDir, reached without a symlink or mount crossing) a
// read-only subvolume holding a copy of it. Regular files, directories and
// symlinks (never followed) are copied with their modes and mtimes;
// overlay whiteouts (character devices 0/0) are skipped; any other special
// file, or a file owned by an id outside the container's range, is refused.
// Owners are moved from container ids based at `fromRoot` (the host id of
// the container's root on disk, 0 for a privileged one) to 0-based.
// Extended attributes and ACLs are not copied; hard links become copies.
// Returns the volumes' paths, in `keptPaths`' order. An existing dataset
// `hash` is kAlreadyExists.
Result<std::vector<std::string>> makeDatasetVolume(const std::string& pool, const std::string& hash,
                                                   const std::string& fromDir,
                                                   const std::vector<std::string>& keptPaths,
                                                   uint32_t fromRoot);
// Deletes dataset `hash` (and a leftover `hash`.part); missing is fine.
// Environments' snapshots of it are theirs and stay.
Status deleteDatasetVolume(const std::string& pool, const std::string& hash);

// The hashes of the complete datasets in the pool.
Result<std::vector<std::string>> listDatasetVolumes(const std::string& pool);
// The containers that have snapshots in envs/.
Result<std::vector<std::string>> listEnvData(const std::string& pool);
// Deletes every leftover datasets/*.part (a crash's); returns their hashes.
Result<std::vector<std::string>> removePartialDatasets(const std::string& pool);
// Deletes envs/<container> and its snapshots; missing is fine.
Status deleteEnvData(const std::string& pool, const std::string& container);

// A dataset hash or container name as a pool path component: letters,
// digits, '-', '_' and '.', not starting with '.', no ".part" suffix.
Status checkPoolName(const std::string& what, const std::string& name);

}  // namespace qabox
