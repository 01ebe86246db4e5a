import type { Texts } from '../i18n.js';

/** The texts of the admin's host pages (the grid and a host's detail). */
export const HOST_TEXT: Texts<
  | 'title' | 'detailTitle' | 'refreshHint' | 'gpus' | 'gpuSummary' | 'free' | 'allocated' | 'unhealthy' | 'notReported' | 'heldBy' | 'owner'
  | 'cpu' | 'memory' | 'storage' | 'cores' | 'agent' | 'address' | 'lastReport' | 'cordon' | 'uncordon' | 'drain' | 'approve'
  | 'drainConfirm' | 'cordonHint' | 'diskPressure' | 'runtimeError' | 'gpuCondition' | 'noHosts' | 'details' | 'status'
  | 'online' | 'offline' | 'cordoned' | 'draining' | 'pending_approval' | 'facts' | 'environments' | 'events' | 'index' | 'model'
  | 'memoryUsed' | 'utilization' | 'temperature' | 'health' | 'holder' | 'name' | 'envStatus' | 'created' | 'at' | 'kind' | 'message'
  | 'environment' | 'os' | 'kernel' | 'cpuModel' | 'driver' | 'cuda' | 'gpuMode' | 'registered' | 'agentAddress' | 'approved' | 'yes' | 'no'
  | 'machineId' | 'diskFree' | 'healthy' | 'back' | 'gpuCount' | 'resources' | 'ownerCol'
> = {
  en: {
    title: 'Hosts', detailTitle: 'Host {name}', refreshHint: 'This page refreshes itself every few seconds.', gpus: 'GPUs',
    gpuSummary: '{allocated} of {count} allocated, {unhealthy} unhealthy', free: 'free', allocated: 'allocated', unhealthy: 'unhealthy',
    notReported: 'not reported by the agent', heldBy: 'held by', owner: 'owner', cpu: 'CPU', memory: 'Memory', storage: 'Storage',
    cores: 'cores', agent: 'Agent', address: 'Address', lastReport: 'Last report', cordon: 'Cordon', uncordon: 'Uncordon', drain: 'Drain',
    approve: 'Approve', drainConfirm: 'Drain host {name}? No new environments will be placed on it; those on it keep running until stopped or deleted.',
    cordonHint: 'Cordon: no new environments are placed on the host. Drain: the same, and the host is marked to be emptied.',
    diskPressure: 'Disk pressure: the data disk is below its reserve; no new environments.', runtimeError: 'Container runtime unavailable',
    gpuCondition: 'GPU discovery', noHosts: 'No host has registered yet.', details: 'Details', status: 'Status',
    online: 'online', offline: 'offline', cordoned: 'cordoned', draining: 'draining', pending_approval: 'pending approval',
    facts: 'Facts', environments: 'Environments on this host', events: 'Recent events', index: 'Index', model: 'Model',
    memoryUsed: 'Memory used', utilization: 'Utilisation', temperature: 'Temperature', health: 'Health', holder: 'Environment (owner)',
    name: 'Name', envStatus: 'Status', created: 'Created', at: 'Time', kind: 'Event', message: 'Message', environment: 'Environment',
    os: 'OS', kernel: 'Kernel', cpuModel: 'CPU model', driver: 'Driver', cuda: 'CUDA', gpuMode: 'GPU mode', registered: 'Registered',
    agentAddress: 'Agent address', approved: 'Approved', yes: 'yes', no: 'no', machineId: 'Machine id', diskFree: 'Disk free',
    healthy: 'healthy', back: 'All hosts', gpuCount: 'GPUs', resources: 'Resources', ownerCol: 'Owner',
  },
  zh: {
    title: '主机', detailTitle: '主机 {name}', refreshHint: '本页每隔几秒自动刷新。', gpus: 'GPU',
    gpuSummary: '共 {count} 块，已分配 {allocated} 块，异常 {unhealthy} 块', free: '空闲', allocated: '已分配', unhealthy: '异常',
    notReported: 'Agent 未再上报', heldBy: '占用者', owner: '所有者', cpu: 'CPU', memory: '内存', storage: '存储',
    cores: '核', agent: 'Agent', address: '地址', lastReport: '最近上报', cordon: '封锁', uncordon: '解除封锁', drain: '排空',
    approve: '批准', drainConfirm: '确定排空主机 {name}？不再向其调度新环境；已有环境继续运行，直到被停止或删除。',
    cordonHint: '封锁：不再向该主机调度新环境。排空：同样不再调度，并标记该主机待清空。',
    diskPressure: '磁盘空间不足：数据盘低于保留空间，不再接收新环境。', runtimeError: '容器运行时不可用',
    gpuCondition: 'GPU 发现', noHosts: '还没有主机注册。', details: '详情', status: '状态',
    online: '在线', offline: '离线', cordoned: '已封锁', draining: '排空中', pending_approval: '待审批',
    facts: '基本信息', environments: '该主机上的环境', events: '最近事件', index: '序号', model: '型号',
    memoryUsed: '已用显存', utilization: '利用率', temperature: '温度', health: '健康', holder: '环境（所有者）',
    name: '名称', envStatus: '状态', created: '创建时间', at: '时间', kind: '事件', message: '内容', environment: '环境',
    os: '操作系统', kernel: '内核', cpuModel: 'CPU 型号', driver: '驱动', cuda: 'CUDA', gpuMode: 'GPU 模式', registered: '注册时间',
    agentAddress: 'Agent 地址', approved: '已批准', yes: '是', no: '否', machineId: '机器 ID', diskFree: '磁盘剩余',
    healthy: '正常', back: '全部主机', gpuCount: 'GPU', resources: '资源', ownerCol: '所有者',
  },
};

/** A lookup in HOST_TEXT (what translator(HOST_TEXT, lang) returns). */
export type HostT = (key: keyof (typeof HOST_TEXT)['en'], vars?: Record<string, string | number>) => string;
