import type { Texts } from '../i18n.js';

type Key =
  | 'back' | 'status' | 'reason' | 'access' | 'ssh' | 'jupyter' | 'copy' | 'pendingAccess' | 'actions' | 'start' | 'stop' | 'restart' | 'delete'
  | 'confirmStart' | 'confirmStop' | 'confirmRestart' | 'confirmDelete' | 'resources' | 'image' | 'cpu' | 'memory' | 'storage' | 'gpus' | 'created'
  | 'started' | 'timeline' | 'noEvents' | 'logs' | 'logsHint' | 'logsEnded' | 'terminal' | 'openTerminal' | 'closeTerminal' | 'terminalHint'
  | 'terminalClosed' | 'terminalOpen' | 'terminalExit' | 'terminalConnecting' | 'datasets' | 'noMounts' | 'dataset' | 'mountPath' | 'readonly' | 'mount' | 'unmount'
  | 'confirmUnmount' | 'noDatasets' | 'mountHint' | 'yes' | 'no' | 'statusNow' | 'storageUsed' | 'hostKeys' | 'hostKeysPending';

/** The detail page's texts (environment-detail.tsx and its parts). */
export const DETAIL_TEXT: Texts<Key> = {
  en: {
    back: 'All environments', status: 'Status', reason: 'Reason', access: 'Access', ssh: 'SSH command', jupyter: 'Jupyter', copy: 'Copy',
    pendingAccess: 'Available once the environment is placed on a host.', actions: 'Actions', start: 'Start', stop: 'Stop', restart: 'Restart', delete: 'Delete',
    confirmStart: 'Start this environment?', confirmStop: 'Stop this environment? Its GPUs are released; the data volume is kept.',
    confirmRestart: 'Restart this environment? Running programs end.', confirmDelete: 'Delete this environment and its data volume? This cannot be undone.',
    resources: 'Resources', image: 'Image', cpu: 'CPU cores', memory: 'Memory', storage: 'Storage', gpus: 'GPUs', created: 'Created', started: 'Started',
    timeline: 'Status timeline', noEvents: 'No events yet.', logs: 'Live logs', logsHint: 'Platform events and the container output, as they happen.',
    logsEnded: 'log stream ended', terminal: 'Terminal', openTerminal: 'Open terminal', closeTerminal: 'Close terminal',
    terminalHint: 'A shell in the container, through the controller (no SSH port needed).', terminalClosed: 'closed', terminalOpen: 'connected',
    terminalExit: 'shell exited with code {code}', terminalConnecting: 'connecting…', datasets: 'Datasets', noMounts: 'No datasets mounted.',
    dataset: 'Dataset', mountPath: 'Mount path', readonly: 'Read-only', mount: 'Mount', unmount: 'Unmount', confirmUnmount: 'Unmount this dataset?',
    noDatasets: 'No datasets you can mount.', mountHint: 'A running environment is recreated to apply a mount (its data volume is kept).', yes: 'yes', no: 'no',
    statusNow: 'status is now {status}', storageUsed: '{used} used',
    hostKeys: 'SSH host key fingerprints', hostKeysPending: 'Shown once the SSH server of the environment has started.',
  },
  zh: {
    back: '全部环境', status: '状态', reason: '原因', access: '访问方式', ssh: 'SSH 命令', jupyter: 'Jupyter', copy: '复制',
    pendingAccess: '环境分配到主机后可用。', actions: '操作', start: '启动', stop: '停止', restart: '重启', delete: '删除',
    confirmStart: '启动这个环境？', confirmStop: '停止这个环境？GPU 会被释放，数据卷保留。',
    confirmRestart: '重启这个环境？正在运行的程序会结束。', confirmDelete: '删除这个环境及其数据卷？此操作不可撤销。',
    resources: '资源', image: '镜像', cpu: 'CPU 核数', memory: '内存', storage: '存储', gpus: 'GPU', created: '创建时间', started: '启动时间',
    timeline: '状态时间线', noEvents: '暂无事件。', logs: '实时日志', logsHint: '平台事件与容器输出，实时显示。',
    logsEnded: '日志流已结束', terminal: '终端', openTerminal: '打开终端', closeTerminal: '关闭终端',
    terminalHint: '经由控制器连接容器内的 shell（无需 SSH 端口）。', terminalClosed: '已关闭', terminalOpen: '已连接',
    terminalExit: 'shell 已退出，退出码 {code}', terminalConnecting: '连接中…', datasets: '数据集', noMounts: '未挂载数据集。',
    dataset: '数据集', mountPath: '挂载路径', readonly: '只读', mount: '挂载', unmount: '卸载', confirmUnmount: '卸载这个数据集？',
    noDatasets: '没有可挂载的数据集。', mountHint: '运行中的环境会重建容器以应用挂载（数据卷保留）。', yes: '是', no: '否',
    statusNow: '状态变为 {status}', storageUsed: '已用 {used}',
    hostKeys: 'SSH 主机密钥指纹', hostKeysPending: '环境的 SSH 服务启动后显示。',
  },
};
